-- GET top-K recommendations for users spread over the id space (gowalla ids 0..29857).
dofile(os.getenv("GNNREC_LUA_DIR") .. "/common.lua")
local n = tonumber(os.getenv("GNNREC_USERS") or "29858")
local k = os.getenv("GNNREC_K") or "20"
function request()
   u = (u + 104729) % n
   return wrk.format("GET", "/v1/users/" .. u .. "/recommendations?k=" .. k)
end
