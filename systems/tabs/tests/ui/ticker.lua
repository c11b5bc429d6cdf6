-- A well-behaved tab: counts ticks of a 100 ms timer, logs every tenth and
-- reports the count to the broker, forever.
local ticks = 0
local function tick()
    ticks = ticks + 1
    if ticks % 10 == 0 then
        tab.log("tick " .. ticks)
        tab.post("broker", {ticks = ticks})
    end
    tab.set_timeout(100, tick)
end
tab.set_timeout(100, tick)
