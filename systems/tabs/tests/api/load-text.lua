-- load() compiles text, in the tab's own environment; the trimmed library
-- has no dofile, loadfile or coroutine.close (which Lua 5.4.4 can overflow).
local f = assert(load("return 6 * 7"))
tab.post("broker", {answer = f(), dofile = dofile == nil, loadfile = loadfile == nil,
                    close = coroutine.close == nil})
