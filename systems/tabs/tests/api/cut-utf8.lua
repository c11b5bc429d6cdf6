-- A result whose last character does not fit the report's 4 KiB: it is
-- reported as cut, not silently shortened.
tab.post("broker", string.rep("a", 4091) .. "\u{1F600}tail")
