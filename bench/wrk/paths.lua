-- wrk script: every request is the next line of a file, `PATH TOKEN` (a
-- path, one space, a token): GET PATH with "Authorization: Bearer TOKEN",
-- wrapping around. Each caller asks for its own path (say, its own
-- organization's).
--   wrk ... -s bench/wrk/paths.lua URL -- REQUESTS_FILE
local paths = {}
local tokens = {}
local next_index = 0

function init(args)
  local file = args[1] or error("paths.lua: pass the requests file after --")
  for line in io.lines(file) do
    local path, token = line:match("^(%S+) (%S+)$")
    if path then
      paths[#paths + 1] = path
      tokens[#tokens + 1] = "Bearer " .. token
    elseif #line > 0 then
      error("paths.lua: expected `PATH TOKEN` lines in " .. file)
    end
  end
  if #paths == 0 then error("paths.lua: no requests in " .. file) end
  -- Threads start at different points of the list.
  next_index = math.random(#paths) - 1
end

function request()
  next_index = next_index % #paths + 1
  return wrk.format("GET", paths[next_index], { ["Authorization"] = tokens[next_index] })
end
