-- String work: counts the words of a sentence.
local text = "the quick brown fox jumps over the lazy dog the end"
local counts = {}
for w in text:gmatch("%a+") do counts[w] = (counts[w] or 0) + 1 end
tab.post("broker", {the = counts.the, fox = counts.fox, upper = ("walls"):upper()})
