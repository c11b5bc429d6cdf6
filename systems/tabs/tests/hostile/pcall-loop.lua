-- Catches whatever stops it and loops again: the time limit must still hold.
while true do pcall(function() while true do end end) end
