-- Opens a socket: no library offers one; past the Lua wall, socket() itself.
local fd, err
if tab.unsafe then
  fd, err = tab.unsafe.syscall(41, 2, 1, 0) -- socket(AF_INET, SOCK_STREAM, 0)
else
  local socket = require("socket")
  fd = socket.connect("127.0.0.1", 80)
end
tab.post("broker", {socket = fd, errno = err})
