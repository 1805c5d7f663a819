-- wrk script: every request carries the next line of a file as its whole
-- "Cookie" header (a browser-style session request, no Authorization),
-- wrapping around.
--   wrk ... -s bench/wrk/cookies.lua URL -- COOKIES_FILE [PATH]
local cookies = {}
local next_index = 0
local path = "/api/items"

function init(args)
  local file = args[1] or error("cookies.lua: pass the cookies file after --")
  if args[2] then path = args[2] end
  for line in io.lines(file) do
    if #line > 0 then cookies[#cookies + 1] = line end
  end
  if #cookies == 0 then error("cookies.lua: no cookies in " .. file) end
  -- Threads start at different points of the list.
  next_index = math.random(#cookies) - 1
end

function request()
  next_index = next_index % #cookies + 1
  return wrk.format("GET", path, { ["Cookie"] = cookies[next_index] })
end
