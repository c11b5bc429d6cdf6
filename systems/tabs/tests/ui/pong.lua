-- Returns every ball ping.lua sends.
tab.on_message(function(from, msg)
    if type(msg) == "table" and msg.ball then
        tab.post(from, {ball = msg.ball})
    end
end)
