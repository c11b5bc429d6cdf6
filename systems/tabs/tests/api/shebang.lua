#!/usr/bin/env lua
-- A first line starting with # is skipped, as the lua command does;
-- line numbers stay the file's.
local _, msg = pcall(function() error("here") end)
tab.post("broker", {where = msg})
