-- POST /v1/score for one user and 20 items, users and items spread over the gowalla id space.
dofile(os.getenv("GNNREC_LUA_DIR") .. "/common.lua")
local nu = tonumber(os.getenv("GNNREC_USERS") or "29858")
local ni = tonumber(os.getenv("GNNREC_ITEMS") or "40981")
function request()
   u = (u + 104729) % nu
   local items = {}
   for j = 1, 20 do
      items[j] = '"' .. ((u * 31 + j * 997) % ni) .. '"'
   end
   local body = '{"user":"' .. u .. '","items":[' .. table.concat(items, ",") .. ']}'
   return wrk.format("POST", "/v1/score", {["Content-Type"] = "application/json"}, body)
end
