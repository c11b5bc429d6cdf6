local t = nil
t.field = 1
