-- A NUL inside an error's text is shown as a space, not taken as its end.
error("before\0after", 0)
