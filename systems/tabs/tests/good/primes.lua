-- CPU-bound work: the primes below 20000.
local count = 0
for n = 2, 19999 do
  local prime = true
  for d = 2, math.floor(math.sqrt(n)) do
    if n % d == 0 then prime = false break end
  end
  if prime then count = count + 1 end
end
tab.post("broker", {primes = count})
