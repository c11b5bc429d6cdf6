-- An error whose text carries a C1 control (CSI), a right-to-left
-- override and a byte that is not UTF-8: each becomes spaces in the
-- detail, which a terminal shows as written.
error("a\u{202E}b\xc2\x9bc\xffd")
