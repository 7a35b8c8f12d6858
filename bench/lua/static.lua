-- Plain GET of the URL given to wrk (the static-file baseline), with the RESULT line.
dofile(os.getenv("GNNREC_LUA_DIR") .. "/common.lua")
