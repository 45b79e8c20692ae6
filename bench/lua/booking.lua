-- wrk script for the booking benchmark: one connection per wrk thread (-t N -c N), so every
-- response belongs to the request this thread sent last and its latency is exact.
--
-- Configured by environment variables (read once per Lua state):
--   BENCH_MODE     onsale | steady | read | held
--                  onsale: 1-4 random seats among those the client believes free: the seat
--                          map (BENCH_SEATMAP, rewritten by the orchestrator from the database
--                          a few times a second, re-read every BENCH_MAP_MS) less the seats it
--                          was told since are taken (201: its own; 409: the problem's
--                          seatIds). It stops when it believes the hall is sold out.
--                  steady: 1-4 consecutive fresh seats from this thread's own slice (no
--                          conflicts by construction); stops when the slice is used up.
--                  held:   like onsale but never forgets: every seat is expected to be taken
--                          (the rejection path under load).
--                  read:   GET /api/v1/bookings/{id} for (id, owner) pairs of BENCH_IDS.
--   BENCH_PATH     the create path (default /api/v1/bookings)
--   BENCH_SHOW     show id; BENCH_FIRST_SEAT, BENCH_SEATS: the seat id range [first, first+n)
--   BENCH_THREADS  the -t value (to split seat slices and pace the open loop)
--   BENCH_RATE     total requests/s for an open loop (constant arrival rate, latency measured
--                  from the intended send time as wrk2 does); 0 or unset: closed loop
--   BENCH_IDS      file of "booking_id user_id" lines (read mode)
--   BENCH_SEATMAP  file of the free seat ids, one per line (onsale mode; optional)
--   BENCH_MAP_MS   how often a client re-reads the seat map (default 250 ms)
--   BENCH_OUT      where done() writes the per-request record (JSON)
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local function env_number(name, default)
  local value = os.getenv(name)
  if value == nil or value == "" then
    return default
  end
  return tonumber(value)
end

local mode = os.getenv("BENCH_MODE") or "steady"
local path = os.getenv("BENCH_PATH") or "/api/v1/bookings"
local show = env_number("BENCH_SHOW", 1)
local first_seat = env_number("BENCH_FIRST_SEAT", 1)
local seat_count = env_number("BENCH_SEATS", 1000)
local nthreads = env_number("BENCH_THREADS", 1)
local rate = env_number("BENCH_RATE", 0)
local seatmap = os.getenv("BENCH_SEATMAP")
local map_every = env_number("BENCH_MAP_MS", 250) * 1000

-- ---------------------------------------------------------------------------------------------
-- Main state: number the threads, then gather their records in done().

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local function json_numbers(list)
  local parts = {}
  for i = 1, #list do
    parts[i] = string.format("%.1f", list[i])
  end
  return "[" .. table.concat(parts, ",") .. "]"
end

function done(summary, latency, requests)
  local out = os.getenv("BENCH_OUT")
  if out == nil or out == "" then
    return
  end
  local file = assert(io.open(out, "w"))
  file:write("{\"threads\":[")
  for i, thread in ipairs(threads) do
    if i > 1 then
      file:write(",")
    end
    local codes = thread:get("codes") or {}
    local code_parts = {}
    for code, n in pairs(codes) do
      table.insert(code_parts, string.format("\"%s\":%d", tostring(code), n))
    end
    file:write(string.format(
      "{\"start\":%.1f,\"stopped\":%s,\"codes\":{%s},\"ok_t\":%s,\"ok_lat\":%s," ..
        "\"rej_t\":%s,\"rej_lat\":%s,\"err_t\":%s,\"err_lat\":%s,\"seats_ok\":%d}",
      thread:get("t_start") or 0,
      tostring(thread:get("stopped") or false),
      table.concat(code_parts, ","),
      json_numbers(thread:get("ok_t") or {}),
      json_numbers(thread:get("ok_lat") or {}),
      json_numbers(thread:get("rej_t") or {}),
      json_numbers(thread:get("rej_lat") or {}),
      json_numbers(thread:get("err_t") or {}),
      json_numbers(thread:get("err_lat") or {}),
      thread:get("seats_ok") or 0
    ))
  end
  local e = summary.errors
  file:write(string.format(
    "],\"summary\":{\"duration_us\":%d,\"requests\":%d,\"connect\":%d,\"read\":%d," ..
      "\"write\":%d,\"status\":%d,\"timeout\":%d}}",
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout
  ))
  file:close()
end

-- ---------------------------------------------------------------------------------------------
-- Thread state.

tid = 0
t_start = 0
stopped = false
codes = {}
ok_t, ok_lat, rej_t, rej_lat, err_t, err_lat = {}, {}, {}, {}, {}, {}
seats_ok = 0

local free, where = {}, {} -- onsale: the seats this client believes free (array + index)
local cursor, slice_end = 0, 0 -- steady: this thread's seat slice
local ids = {} -- read: { {id, user}, ... }
local next_read = 1
local asked = {} -- the seats of the request in flight
local sent_at, intended = 0, 0
local interval = 0 -- open loop: microseconds between this thread's requests
local next_due = 0
local user = 0

local map_read_at = 0

-- Replace the believed-free seats by the seat map, when it is due and readable.
local function refresh_map(now)
  if seatmap == nil or seatmap == "" or now - map_read_at < map_every then
    return
  end
  map_read_at = now
  local file = io.open(seatmap, "r")
  if file == nil then
    return
  end
  local seats = {}
  for line in file:lines() do
    local seat = tonumber(line)
    if seat then
      seats[#seats + 1] = seat
    end
  end
  file:close()
  free, where = seats, {}
  for i, seat in ipairs(seats) do
    where[seat] = i
  end
end

local function forget(seat)
  local i = where[seat]
  if i == nil then
    return
  end
  local last = free[#free]
  free[i] = last
  where[last] = i
  free[#free] = nil
  where[seat] = nil
end

function init(args)
  math.randomseed(tid * 7919 + 17)
  user = 100000 + tid
  if mode == "onsale" or mode == "held" then
    for seat = first_seat, first_seat + seat_count - 1 do
      free[#free + 1] = seat
      where[seat] = #free
    end
  elseif mode == "steady" then
    local per = math.floor(seat_count / nthreads)
    cursor = first_seat + tid * per
    slice_end = cursor + per
  elseif mode == "read" then
    local file = assert(io.open(os.getenv("BENCH_IDS"), "r"))
    for line in file:lines() do
      local id, owner = line:match("(%d+)%s+(%d+)")
      if id then
        ids[#ids + 1] = { id, owner }
      end
    end
    file:close()
    next_read = (tid * 9973) % math.max(#ids, 1) + 1
  end
  t_start = now_us()
  if rate > 0 then
    interval = nthreads * 1000000 / rate
    -- Spread the threads' schedules evenly over one interval.
    next_due = t_start + interval * tid / nthreads
  end
end

if rate > 0 then
  -- wrk calls delay() before each request; it waits in whole milliseconds.
  function delay()
    local wait = (next_due - now_us()) / 1000
    if wait < 1 then
      return 0
    end
    return math.floor(wait)
  end
end

local function stop()
  if not stopped then
    stopped = true
    wrk.thread:stop()
  end
end

local function booking_request(seats)
  -- Each request comes from another user of the crowd, so the per-caller create limit is
  -- exercised but never trips: what is measured is the service, not one greedy client.
  user = math.random(1, 2000000000)
  local body = string.format("{\"showId\":%d,\"seatIds\":[%s]}", show, table.concat(seats, ","))
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-User-Id"] = tostring(user),
    ["X-User-Name"] = tostring(user) .. "_bench",
    ["X-User-Roles"] = "ROLE_USER",
  }, body)
end

function request()
  local now = now_us()
  sent_at = now
  if rate > 0 then
    -- Measured from the intended send time (coordinated omission), or from the actual send
    -- when the millisecond timer fired a little early.
    intended = math.min(next_due, now)
    next_due = next_due + interval
  else
    intended = now
  end
  asked = {}
  if mode == "read" then
    local pair = ids[next_read]
    next_read = next_read % #ids + 1
    return wrk.format("GET", path .. "/" .. pair[1], {
      ["X-User-Id"] = pair[2],
      ["X-User-Name"] = pair[2] .. "_bench",
      ["X-User-Roles"] = "ROLE_USER",
    })
  end
  if mode == "steady" then
    local k = math.random(1, 4)
    if cursor + k > slice_end then
      stop()
      k = 1
      cursor = slice_end - 1
    end
    for i = 1, k do
      asked[i] = cursor + i - 1
    end
    cursor = cursor + k
    return booking_request(asked)
  end
  -- onsale / held: k distinct random seats among those believed free.
  if mode == "onsale" then
    refresh_map(now)
  end
  if #free == 0 then
    stop()
    return booking_request({ first_seat })
  end
  local k = math.min(math.random(1, 4), #free)
  local chosen = {}
  while #asked < k do
    local seat = free[math.random(1, #free)]
    if not chosen[seat] then
      chosen[seat] = true
      asked[#asked + 1] = seat
    end
  end
  return booking_request(asked)
end

function response(status, headers, body)
  local done_at = now_us()
  if stopped then
    return
  end
  codes[status] = (codes[status] or 0) + 1
  local latency = done_at - intended
  if status == 201 or status == 200 then
    ok_t[#ok_t + 1] = done_at
    ok_lat[#ok_lat + 1] = latency
    seats_ok = seats_ok + #asked
    if mode == "onsale" then
      for _, seat in ipairs(asked) do
        forget(seat)
      end
    end
  elseif status == 409 then
    rej_t[#rej_t + 1] = done_at
    rej_lat[#rej_lat + 1] = latency
    if mode == "onsale" and body then
      local list = body:match("\"seatIds\"%s*:%s*%[([^%]]*)%]")
      if list then
        for seat in list:gmatch("%d+") do
          forget(tonumber(seat))
        end
      end
    end
  else
    err_t[#err_t + 1] = done_at
    err_lat[#err_lat + 1] = latency
  end
end
