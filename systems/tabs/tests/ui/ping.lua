-- Plays ping-pong with pong.lua: a ball every 200 ms, each returned one
-- counted and reported to the broker.
local returned = 0
tab.on_message(function(from, msg)
    if from == "pong" and type(msg) == "table" and msg.ball then
        returned = returned + 1
        if returned % 5 == 0 then
            tab.log("rally of " .. returned)
            tab.post("broker", {returned = returned})
        end
    end
end)
local n = 0
local function serve()
    n = n + 1
    tab.post("pong", {ball = n})
    tab.set_timeout(200, serve)
end
tab.set_timeout(200, serve)
