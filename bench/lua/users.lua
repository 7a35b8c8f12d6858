-- GET top-20 recommendations for users spread over the id space (gowalla ids 0..29857).
local n = tonumber(os.getenv("GNNREC_USERS") or "29858")
local k = os.getenv("GNNREC_K") or "20"
local prefix = os.getenv("GNNREC_PATH_PREFIX") or "/v1/users/"
local suffix = os.getenv("GNNREC_PATH_SUFFIX") or "/recommendations?k="
local counter = 0
function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
end
function init(args)
   u = id * 7919
end
function request()
   u = (u + 104729) % n
   return wrk.format("GET", prefix .. u .. suffix .. k)
end
-- Optional think time (ms) per request and connection, to hold a target rate (GNNREC_DELAY_MS).
local d = tonumber(os.getenv("GNNREC_DELAY_MS") or "0")
if d > 0 then
   function delay() return d end
end
dofile(os.getenv("GNNREC_LUA_DIR") .. "/report.lua")
