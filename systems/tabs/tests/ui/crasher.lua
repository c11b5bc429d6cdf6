-- Needs --unsafe-lua. Crashes its process for real once: on its first load
-- it marks storage and sends its own thread SIGSEGV from a 50 ms timer
-- (x86-64: getpid 39, gettid 186, tgkill 234; the strict sandbox allows
-- tgkill on its own process, where kill would be a violation). Loaded
-- again, it stays healthy.
if tab.storage.get("crashed") == nil then
    tab.storage.set("crashed", "1")
    tab.log("first run: crashing in 50 ms")
    tab.set_timeout(50, function()
        local pid = tab.unsafe.syscall(39)
        local tid = tab.unsafe.syscall(186)
        tab.unsafe.syscall(234, pid, tid, 11)
    end)
else
    tab.log("reloaded after a crash")
    tab.post("broker", {restarted = true})
    local function idle()
        tab.set_timeout(500, idle)
    end
    tab.set_timeout(500, idle)
end
