-- wrk script for python -m benchmarks: GET one path, optionally with a fixed Cookie and a
-- fresh Authorization header from a file (one header value a line) on every request.
-- Counts statuses; stops the thread when the tokens run out, so none is sent twice (wrk
-- still reports the full duration then, so the harness is told: last field of RESULT).
-- Arguments (after --): path, tokens file or "-", cookie or "-".

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  path = args[1]
  cookie = args[3]
  if cookie == "-" then cookie = nil end
  tokens = {}
  if args[2] and args[2] ~= "-" then
    for line in io.lines(args[2]) do tokens[#tokens + 1] = line end
  end
  used = 0
  exhausted = 0
  ok, unauthorized, other = 0, 0, 0
end

function request()
  local headers = {}
  if cookie then headers["Cookie"] = cookie end
  if #tokens > 0 then
    used = used + 1
    if used >= #tokens then
      exhausted = 1
      wrk.thread:stop()
    end
    headers["Authorization"] = tokens[math.min(used, #tokens)]
  end
  return wrk.format("GET", path, headers)
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 401 then
    unauthorized = unauthorized + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local s200, s401, sother, out = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    out = math.max(out, thread:get("exhausted"))
    s200 = s200 + thread:get("ok")
    s401 = s401 + thread:get("unauthorized")
    sother = sother + thread:get("other")
  end
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\n", summary.duration, summary.requests,
    s200, s401, sother, e.connect + e.read + e.write + e.timeout, out))
end
