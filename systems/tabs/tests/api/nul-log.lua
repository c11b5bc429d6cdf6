-- A NUL inside a log line is shown as a space, and the line goes on.
tab.log("before\0after")
