-- Coroutines: a generator of 1..100, summed.
local gen = coroutine.wrap(function() for i = 1, 100 do coroutine.yield(i) end end)
local sum = 0
for _ = 1, 100 do sum = sum + gen() end
tab.post("broker", {sum = sum})
