-- wrk script: requests alternate between the paths in WRK_PATH_A and
-- WRK_PATH_B (the same application in two groups, say), so that both are
-- busy at once (tests/bench/own_gil_bench.py).
local paths = {os.getenv("WRK_PATH_A"), os.getenv("WRK_PATH_B")}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[n % 2 + 1])
end
