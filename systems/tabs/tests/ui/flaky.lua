-- Fails once: on its first load it marks storage and raises an error from a
-- 50 ms timer; loaded again, it finds the mark, reports that it recovered
-- and stays healthy on a slow timer.
if tab.storage.get("ran") == nil then
    tab.storage.set("ran", "1")
    tab.log("first run: failing in 50 ms")
    tab.set_timeout(50, function()
        error("boom")
    end)
else
    tab.log("reloaded: recovered")
    tab.post("broker", {recovered = true})
    local function idle()
        tab.set_timeout(500, idle)
    end
    tab.set_timeout(500, idle)
end
