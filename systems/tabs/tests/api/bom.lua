-- A UTF-8 byte order mark before the script is skipped.
tab.post("broker", {bom = true})
