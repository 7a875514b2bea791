-- wrk script: alternate requests between /g1 and /g2 (the same hello app in
-- two application groups), so both interpreters are busy at once.
local n = 0
request = function()
  n = n + 1
  if n % 2 == 0 then
    return wrk.format("GET", "/g1")
  end
  return wrk.format("GET", "/g2")
end
