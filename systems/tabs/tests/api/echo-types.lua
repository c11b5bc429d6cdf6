-- Every kind of value a message may hold comes back as it went.
tab.on_message(function(from, v)
  tab.post("broker", {int = v[1], float = v[2], yes = v[3], no = v[4], str = v[5],
                      big = v[6], neg = v[7], type1 = math.type(v[1]), type2 = math.type(v[2])})
end)
tab.post(tab.name, {42, 0.25, true, false, "a\"b\n", math.maxinteger, -7})
