-- wrk script: every request carries the next token from a file (one per
-- line) as "Authorization: Bearer <token>", wrapping around.
--   wrk ... -s bench/wrk/rotate.lua URL -- TOKENS_FILE [PATH]
local tokens = {}
local next_index = 0
local path = "/api/items"

function init(args)
  local file = args[1] or error("rotate.lua: pass the tokens file after --")
  if args[2] then path = args[2] end
  for line in io.lines(file) do
    if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
  end
  if #tokens == 0 then error("rotate.lua: no tokens in " .. file) end
  -- Threads start at different points of the list.
  next_index = math.random(#tokens) - 1
end

function request()
  next_index = next_index % #tokens + 1
  return wrk.format("GET", path, { ["Authorization"] = tokens[next_index] })
end
