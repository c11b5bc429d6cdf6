-- Says hostile things where the page shows them: markup in its log and its
-- result, which the page must show as text.
local n = 0
local function again()
    n = n + 1
    tab.log('<img src=x onerror="document.title=\'pwned\'"> <b>bold?</b> ' .. n)
    tab.post("broker", {html = "<script>alert(1)</script>", quote = '"\\'})
    tab.set_timeout(300, again)
end
again()
