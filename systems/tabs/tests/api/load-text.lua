-- load() compiles text, in the tab's own environment.
local f = assert(load("return 6 * 7"))
tab.post("broker", {answer = f(), dofile = dofile == nil, loadfile = loadfile == nil})
