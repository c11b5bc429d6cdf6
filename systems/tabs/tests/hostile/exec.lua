-- Runs a program of the host: os.execute() where there is an os library,
-- then execve() itself, as native code past the Lua wall would.
local ran = os.execute("/bin/sh -c 'echo escaped > /tmp/walls-tabs-escaped'")
tab.log("os.execute gave", tostring(ran))
if tab.unsafe then tab.unsafe.syscall(59, 0, 0, 0) end -- execve(NULL, NULL, NULL)
tab.post("broker", {ran = ran})
