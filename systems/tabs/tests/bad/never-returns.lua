-- Its top level never ends.
while true do end
