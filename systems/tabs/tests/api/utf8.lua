-- Text that is UTF-8 reaches the report as it is; bytes that are not
-- become U+FFFD, so the report stays valid JSON.
tab.post("broker", {s = "h\195\169llo \226\156\147 \240\159\152\128 bad\255end"})
