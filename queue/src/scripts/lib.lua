-- lib: helpers shared by the scripts. scripts/mod.rs puts this file before each script's own
-- text, so one piece of Lua serves every script that opens a call, hands out a job or reads
-- the clock.
--
-- Every script takes the queue's meta as KEYS[1] and the caller's protocol version as ARGV[1].
-- The queue's other keys start like its meta key ("P:{Q}:"), and so do its wake channel
-- ("P:{Q}:wake") and its workers' inboxes ("P:{Q}:inbox:W"), which the scripts name themselves.

-- Redis's clock in milliseconds, and the microseconds of the current second (for jitter).
-- Leases, backoffs and heartbeats are measured on this clock only, never on a host's.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(t[2])
end

-- "P:{Q}:" from "P:{Q}:meta".
local function key_base(meta)
  return string.sub(meta, 1, -5)
end

-- Opens a call on the queue whose meta is `meta`: refuses a caller of another protocol major
-- version, a queue nobody opened and a queue that requires a feature these scripts do not
-- know, and returns the queue's settings named `...` (numbers), by name, its `requires`
-- (text, or false) as `s.requires`, the features it lists as `s.uses` (a set, or false),
-- whether it is paused as `s.paused`, and until when jobs' waits are wanted (`waits_until`,
-- ms, or nil; `renew`) as `s.waits_until`. With `caller` a table this function returned
-- earlier in the same call, only reads the settings named `...` into it (a second read, once
-- the call knows it needs them). A call reads only the settings it needs: each field read
-- costs it time, and a hot call needs three or four of the queue's dozen.
local function open_call(meta, caller, ...)
  local s, values, offset
  if type(caller) == 'table' then
    s, offset = caller, 0
    if select('#', ...) > 0 then values = redis.call('HMGET', meta, ...) end
  else
    values, offset = redis.call('HMGET', meta, 'protocol', 'requires', 'paused', 'waits_until', ...), 4
    local found = values[1]
    -- The same version, the usual case, needs no parsing.
    if found ~= caller then
      local queue = string.match(meta, '{(.*)}') or meta
      if not found then error({err = 'SQUE_NOQUEUE ' .. queue}) end
      if string.match(found, '^(%d+)') ~= string.match(caller, '^(%d+)') then
        error({err = 'SQUE_PROTOCOL ' .. found .. ' ' .. queue})
      end
    end
    local requires, uses = values[2], false
    if requires then
      -- The features of protocol 1.1 and 1.2 (`cap`, `rate`, `priority`, `cron_priority`) a queue's meta may list in
      -- `requires` (comma-separated): one these scripts do not know is refused, since they
      -- would silently ignore it.
      uses = {}
      for feature in string.gmatch(requires, '[^,]+') do
        if not string.find(',delay,pause,cron,unique,cancel,children,cap,rate,priority,cron_priority,', ',' .. feature .. ',', 1, true) then
          error({err = 'SQUE_FEATURE ' .. feature .. ' ' .. (string.match(meta, '{(.*)}') or meta)})
        end
        uses[feature] = true
      end
    end
    s = {requires = requires, uses = uses, paused = values[3] == '1', waits_until = tonumber(values[4])}
  end
  for i = 1, select('#', ...) do
    local name = select(i, ...)
    local value = tonumber(values[i + offset])
    if not value then
      error({err = 'SQUE_NOQUEUE ' .. (string.match(meta, '{(.*)}') or meta) .. ' has no setting ' .. name .. '; open the queue first'})
    end
    s[name] = value
  end
  return s
end

-- Parses an item ("ID|ATTEMPTS" or "ID|ATTEMPTS|MAX"): decimal id of at most 20 digits,
-- counts of at most 9 digits, a limit of at least 1. Returns id, attempts, max ('' for the
-- queue's) or nil.
local function parse_item(item)
  local id, attempts, max = string.match(item, '^(%d+)|(%d+)|?(%d*)$')
  if not id or #id > 20 or #attempts > 9 or #max > 9 or max == '0' then return nil end
  return id, attempts, max
end

-- Parses a token ("ID|ATTEMPT|MAX"), with the same rules. Returns id, attempt, max or nil.
local function parse_token(token)
  local id, attempt, max = parse_item(token)
  if not id or max == '' then return nil end
  return id, tonumber(attempt), tonumber(max)
end

-- What only the calls that use a feature of protocol 1.1 need, made on first use: every
-- function and upvalue at the top level costs every call of every script (see the dead
-- list's helpers below), and most calls use none of these.
--  - require_feature(meta, requires, feature): records in the queue's meta that it uses
--    `feature`, unless `requires` (as open_call read it) lists it already; from then on a
--    host that does not know the feature refuses the queue instead of ignoring what it holds.
--    require_limits_if_set(meta) does so for `cap` and `rate` when meta's limits are set.
--  - check_job(n, data, max, when, limit, now): checks job `n` of `schedule` or
--    `push_unique` (`push` checks its own, on the hot path): its data not empty
--    (`empty_job`) and within `limit` bytes,
--    its attempt limit ("" or 1 to 999999999) and its due time ("" for now, "+MS" a delay
--    from `now`, "@MS" a time). Returns when it is due (ms), or nil for now; raises
--    SQUE_TOOLARGE or SQUE_INVALID before the caller has written anything.
--  - unique: unique keys (feature `unique`). A key is held by one job (`unique`: key -> id)
--    from its push until it completes (and for its window after that: `unique_until`), is
--    dead-lettered or purged; `unique_of` (id -> "WINDOW_MS|KEY") remembers a job's key
--    while the queue keeps the job, so that a dead job retried takes its key again.
local features
local function since_1_1()
  if features then return features end
  local f = {}

  function f.require_feature(meta, requires, feature)
    if requires and string.find(',' .. requires .. ',', ',' .. feature .. ',', 1, true) then return end
    redis.call('HSET', meta, 'requires', requires and (requires .. ',' .. feature) or feature)
  end

  -- The limits a host of 1.1 would ignore, as meta holds them now: a cap on the jobs in
  -- flight (`max_in_flight` above 0: feature `cap`), a rate limit (`rate_count` above 0:
  -- feature `rate`).
  function f.require_limits_if_set(meta)
    local set = redis.call('HMGET', meta, 'max_in_flight', 'rate_count')
    if (tonumber(set[1]) or 0) > 0 then
      f.require_feature(meta, redis.call('HGET', meta, 'requires'), 'cap')
    end
    if (tonumber(set[2]) or 0) > 0 then
      f.require_feature(meta, redis.call('HGET', meta, 'requires'), 'rate')
    end
  end

  -- The refusal of job `n` of a push whose data is empty. No JSON text is empty, and in
  -- `jobs` the empty string marks a job cancelled while it waited (`cancel`): taken as data,
  -- the job would be dropped at delivery as cancelled, unrecorded, its unique key held.
  -- (Here, not at the top: every script runs this file's top on every call.)
  function f.empty_job(n)
    return 'SQUE_INVALID job ' .. n .. ': its data is empty; a job carries JSON (null, at least)'
  end

  function f.check_job(n, data, max, when, limit, now)
    if #data == 0 then error({err = f.empty_job(n)}) end
    if #data > limit then
      error({err = 'SQUE_TOOLARGE job ' .. n .. ' is ' .. #data ..
        ' bytes, over the queue\'s limit of ' .. limit .. ' bytes'})
    end
    if max ~= '' and (not string.match(max, '^%d+$') or #max > 9 or tonumber(max) < 1) then
      error({err = 'SQUE_INVALID job ' .. n .. ': max_attempts ' ..
        string.format('%q', string.sub(max, 1, 20)) .. ' is not a number from 1 to 999999999'})
    end
    if when == '' then return nil end
    local kind, ms = string.match(when, '^([+@])(%d+)$')
    if not kind or #ms > 15 then
      error({err = 'SQUE_INVALID job ' .. n .. ': due ' .. string.format('%q', string.sub(when, 1, 20)) ..
        ' is neither +MS (a delay) nor @MS (a time), of at most 15 digits'})
    end
    return kind == '+' and now + tonumber(ms) or tonumber(ms)
  end

  local u = {}
  f.unique = u

  -- The keys of the queue whose keys start with `base`.
  function u.keys(base)
    return {held = base .. 'unique', of = base .. 'unique_of', until_ = base .. 'unique_until'}
  end

  -- The key and window of job `id`, or nil.
  function u.of(k, id)
    local v = redis.call('HGET', k.of, id)
    if not v then return nil end
    local window, key = string.match(v, '^(%d+)|(.*)$')
    return key, tonumber(window)
  end

  -- Lets go of job `id`'s key. `ended`: "completed" (the key stays held for its window, then
  -- the reaper frees it), "dead" (freed, but remembered for a retry) or "gone" (purged:
  -- freed and forgotten).
  function u.release(k, id, ended, now)
    local key, window = u.of(k, id)
    if not key then return end
    if ended ~= 'dead' then redis.call('HDEL', k.of, id) end
    if redis.call('HGET', k.held, key) ~= id then return end
    if ended == 'completed' and window > 0 then
      redis.call('ZADD', k.until_, now + window, key)
    else
      redis.call('HDEL', k.held, key)
    end
  end

  -- Whether `key`, found held, is held only by a window that has ended by `now`: then it is
  -- free, whether or not a reaper has freed it yet. The taker's HSET replaces the holder and
  -- must ZREM the window, or the reaper would later free the new holder's key.
  function u.window_over(k, key, now)
    local ends = redis.call('ZSCORE', k.until_, key)
    return ends ~= false and tonumber(ends) <= now
  end

  -- Takes job `id`'s key again (a dead job retried); returns nil, or why it cannot.
  function u.retake(k, id, now)
    local key = u.of(k, id)
    if not key then return nil end
    local holder = redis.call('HGET', k.held, key)
    if holder and holder ~= id and not u.window_over(k, key, now) then
      local window = redis.call('ZSCORE', k.until_, key)
      local wait = window and ('the window after its completion ends in ' ..
        string.format('%d', tonumber(window) - now) .. ' ms') or 'that job is done'
      return 'its unique key ' .. string.format('%q', string.sub(key, 1, 80)) .. ' is held by job ' .. holder .. ': retry it once ' .. wait .. ', or purge this one'
    end
    redis.call('HSET', k.held, key, id)
    redis.call('ZREM', k.until_, key)
    return nil
  end

  -- Frees the keys whose window after completion has passed, at most `limit`; how many.
  function u.expire(k, now, limit)
    local over = redis.call('ZRANGEBYSCORE', k.until_, '-inf', now, 'LIMIT', 0, limit)
    if #over == 0 then return 0 end
    redis.call('ZREM', k.until_, unpack(over))
    redis.call('HDEL', k.held, unpack(over))
    return #over
  end

  features = f
  return f
end

-- The dead list's helpers, made on first use. Redis runs a script's whole text at every call,
-- and every function and every upvalue it makes at the top level costs every call of every
-- script (a tenth to a quarter of a microsecond each, measured); most calls never bury
-- anything. So the top level holds only what nearly every call uses, and each group of
-- helpers is made by a function when it is needed.
local dead_list
local function graveyard()
  if dead_list then return dead_list end
  local d = {}
  -- Poison: data that no worker can be given. It goes to the dead list at once, keeping at
  -- most this much of its data.
  local POISON_KEEP = 4096
  -- Entries the dead list is trimmed by, at most, in one call (the reaper carries on).
  local TRIM_PER_CALL = 100

  -- A job's last error, as the errors hash keeps it: {"code", "message", "at", "token", ...}.
  function d.record(code, message, now, token, extra)
    local e = extra or {}
    e.code, e.message, e.at, e.token = code, message, now, token
    return cjson.encode(e)
  end

  -- The keys a buried job touches: {meta, dead = dead_at, errors, jobs, stats}.
  function d.keys(base)
    return {meta = base .. 'meta', dead = base .. 'dead_at', errors = base .. 'errors',
            jobs = base .. 'jobs', stats = base .. 'stats'}
  end

  -- Trims the dead list to the queue's dead_max entries and dead_ttl of age, at most `limit`
  -- entries in this call: the oldest go first, with their data and error. Returns how many.
  -- Reads the two settings into `s` unless the caller had them read.
  function d.trim(k, s, now, limit)
    if not s.dead_max then open_call(k.meta, s, 'dead_max', 'dead_ttl') end
    local gone = redis.call('ZRANGEBYSCORE', k.dead, '-inf', now - s.dead_ttl, 'LIMIT', 0, limit)
    local over = redis.call('ZCARD', k.dead) - #gone - s.dead_max
    if over > 0 and #gone < limit then
      local oldest = redis.call('ZRANGE', k.dead, #gone, #gone + math.min(over, limit - #gone) - 1)
      for _, member in ipairs(oldest) do gone[#gone + 1] = member end
    end
    if #gone == 0 then return 0 end
    redis.call('ZREM', k.dead, unpack(gone))
    local u = since_1_1().unique
    local uk = u.keys(key_base(k.meta))
    for _, member in ipairs(gone) do
      local id = parse_token(member) or member
      redis.call('HDEL', k.jobs, id)
      redis.call('HDEL', k.errors, id)
      if s.uses and s.uses.priority then redis.call('HDEL', key_base(k.meta) .. 'priority', id) end
      u.release(uk, id, 'gone', now)
    end
    redis.call('HINCRBY', k.stats, 'dead_dropped', #gone)
    return #gone
  end

  -- Puts `token` (or, for an entry that does not parse, the entry itself, `id` being it too)
  -- in the dead list with its error, and keeps the list within the queue's bounds.
  function d.bury(k, s, token, id, code, message, now, extra)
    redis.call('HSET', k.errors, id, d.record(code, message, now, token, extra))
    redis.call('ZADD', k.dead, now, token)
    redis.call('HINCRBY', k.stats, 'dead', 1)
    local u = since_1_1().unique
    u.release(u.keys(key_base(k.meta)), id, 'dead', now)
    d.trim(k, s, now, TRIM_PER_CALL)
  end

  -- The dead entry (token, or the entry itself) of job `id` and its error record, or nil
  -- when it is not dead. `k`: {dead = dead_at, errors}.
  function d.find(k, id)
    local record = redis.call('HGET', k.errors, id)
    local e
    if record then
      local ok, decoded = pcall(cjson.decode, record)
      if ok and type(decoded) == 'table' then e = decoded end
    end
    if e and type(e.token) == 'string' and redis.call('ZSCORE', k.dead, e.token) then
      return e.token, e
    end
    if redis.call('ZSCORE', k.dead, id) then return id, e end
    -- No record names its entry (written by an older version): look for it.
    local cursor = '0'
    repeat
      local page = redis.call('ZSCAN', k.dead, cursor, 'MATCH', id .. '|*', 'COUNT', 1000)
      cursor = page[1]
      for i = 1, #page[2], 2 do
        if parse_token(page[2][i]) == id then return page[2][i], e end
      end
    until cursor == '0'
    return nil
  end

  -- `text` cut to at most `limit` bytes, at a character boundary, saying how long it was.
  function d.cut(text, limit)
    if #text <= limit then return text end
    local mark = ' … (cut: ' .. #text .. ' bytes in all)'
    local stop = math.max(limit - #mark, 0)
    -- Back off UTF-8 continuation bytes so that the cut text stays UTF-8.
    while stop > 0 do
      local b = string.byte(text, stop + 1)
      if not b or b < 128 or b >= 192 then break end
      stop = stop - 1
    end
    return string.sub(text, 1, stop) .. mark
  end

  -- Buries a job whose data no worker can be given (code "poison"): no retry can mend it.
  -- Its data is cut to POISON_KEEP bytes, and the cut said in its error.
  function d.bury_poison(k, s, token, id, message, now)
    local data = redis.call('HGET', k.jobs, id)
    local extra = {}
    if data then
      extra.data_bytes = #data
      if #data > POISON_KEEP then
        redis.call('HSET', k.jobs, id, string.sub(data, 1, POISON_KEEP))
        extra.cut = true
      end
    end
    d.bury(k, s, token, id, 'poison', message, now, extra)
    redis.call('HINCRBY', k.stats, 'poisoned', 1)
  end

  dead_list = d
  return d
end

-- What only the calls that measure waits or keep a rate limit (protocol 1.2) need, made on
-- first use, as `since_1_1` is.
--  - push_times(pushed, parsed): when the first attempts a `serve` hands out began to wait;
--    record_pushes(pushed, first, at): records that, for jobs that fall due at their own times.
--  - room(base): how many more jobs a capped queue may lease (feature `cap`).
--  - rate_state(base, now), spend_rate(rate, n, now), rate_wait(rate, now): a queue's rate
--    limit (feature `rate`).
--  - lists, level_named, enter_level, list_of, append, count_waiting, take,
--    records, push_times_by_level: priorities (feature `priority`).
local measures
local function since_1_2()
  if measures then return measures end
  local v = {}

  -- When job `n` (a number) began to wait, by the push record `member` ("FIRST|MS|LAST", or
  -- "FIRST|MS" as protocol 1.1 wrote it, which covers every id up to the next record), or nil
  -- when the record does not cover it (a job of a producer that records no push).
  local function recorded_at(member, n)
    local ms, last = string.match(member, '^%d+|(%d+)|?(%d*)$')
    if not ms or (last ~= '' and n > tonumber(last)) then return nil end
    return tonumber(ms)
  end

  -- When the first attempts among `parsed` ({id, attempts, max} of `serve`) began to wait, in
  -- ms on Redis's clock, by id, from the push records in `pushed` (one per push call, or per
  -- run of a call's jobs that fall due together: score its first id, member
  -- "FIRST|MS|LAST"): a job's is the record with the greatest first id at most its own, if
  -- it reaches the job's id. One ZRANGE serves a batch that left in push order, the usual
  -- case: the records at or below its greatest id, as many as it has jobs. A job older than
  -- those is looked up alone. A job whose record is gone (reap drops those before the head's:
  -- it came back to the queue after the head had passed it, or was promoted after that) has
  -- none; nor has a batch without a first attempt (nil). A job retried from the dead list
  -- (attempts "00", `dead`) is not a first attempt here: it began to wait at its retry, which
  -- no record holds.
  function v.push_times(pushed, parsed)
    local firsts, sorted = {}, true
    for _, p in ipairs(parsed) do
      if p[1] and p[2] == '0' then
        local n = tonumber(p[1])
        if #firsts > 0 and n < firsts[#firsts][2] then sorted = false end
        firsts[#firsts + 1] = {p[1], n}
      end
    end
    if #firsts == 0 then return nil end
    if not sorted then table.sort(firsts, function(a, b) return a[2] < b[2] end) end
    local records = redis.call('ZRANGE', pushed, firsts[#firsts][1], '-inf', 'BYSCORE', 'REV',
                               'LIMIT', 0, #firsts, 'WITHSCORES')
    local at, r = {}, 1
    for i = #firsts, 1, -1 do
      local id, n = firsts[i][1], firsts[i][2]
      while r < #records and tonumber(records[r + 1]) > n do r = r + 2 end
      if r < #records then
        at[id] = recorded_at(records[r], n)
      elseif #records == 2 * #firsts then
        -- Records were left out: the job's may be among them.
        local member = redis.call('ZRANGE', pushed, id, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1)[1]
        at[id] = member and recorded_at(member, n)
      end
    end
    return at
  end

  -- Records in `pushed` when the jobs with ids `first`, `first` + 1, ... began to wait: the
  -- i-th at `at[i]` (ms), one record per run of jobs with the same time. A call that pushed
  -- jobs for now writes its one record itself (`push`); these are for calls whose jobs fall
  -- due at their own times.
  function v.record_pushes(pushed, first, at)
    local members, run = {}, 1
    for i = 2, #at + 1 do
      if at[i] ~= at[run] then
        local from = string.format('%d', first + run - 1)
        members[#members + 1] = from
        members[#members + 1] = string.format('%s|%d|%d', from, at[run], first + i - 2)
        run = i
        if #members == 2000 or i > #at then
          redis.call('ZADD', pushed, unpack(members))
          members = {}
        end
      end
    end
  end

  -- The `q` of `serve` for the queue whose keys start with `base`, with its settings `s`.
  -- The numbers every job repeats are made text here, once: a number in a concatenation or a
  -- redis.call argument is formatted anew each time (a sprintf), which cost a seventh of what
  -- handing out a job costs Redis (counted with callgrind).
  -- A rate limit of `rate_count` jobs per `rate_period` ms, with bursts of `rate_burst` (0:
  -- `rate_count`), kept as GCRA keeps it: one number, the theoretical arrival time `tat`
  -- ("P:{Q}:rate", ms on Redis's clock, expiring once it is past), which each job handed out
  -- moves on by the emission interval t = period / count. A job may go while tat is at most
  -- (burst - 1) × t ahead of now. Returns {key, t, burst, tat, left (jobs that may go now)},
  -- or nil when the queue has no limit (set to 0 since).
  function v.rate_state(base, now)
    local r = redis.call('HMGET', base .. 'meta', 'rate_count', 'rate_period', 'rate_burst')
    local count, period, burst = tonumber(r[1]), tonumber(r[2]), tonumber(r[3])
    if not count or count <= 0 or not period or period <= 0 then return nil end
    if not burst or burst < 1 then burst = count end
    local key = base .. 'rate'
    local t = period / count
    local tat = math.max(tonumber(redis.call('GET', key)) or 0, now)
    -- No job handed out under this limit leaves tat more than burst × t ahead. One further
    -- ahead was left by a slower limit: it becomes this one's furthest, stored, so that the
    -- queue goes on at this limit's pace (not held back until the slower one's time).
    if tat > now + burst * t then
      tat = now + burst * t
      redis.call('SET', key, string.format('%.3f', tat), 'PX', math.max(1, math.ceil(tat - now)))
    end
    -- A millionth of a job's interval absorbs the rounding of the stored tat.
    local left = math.floor((now - tat) / t + 1e-6) + burst
    return {key = key, t = t, burst = burst, tat = tat, left = left}
  end

  -- Records `n` jobs handed out under the rate limit `rate` (`rate_state`) at `now`.
  function v.spend_rate(rate, n, now)
    rate.tat = rate.tat + n * rate.t
    rate.left = rate.left - n
    redis.call('SET', rate.key, string.format('%.3f', rate.tat), 'PX',
               math.max(1, math.ceil(rate.tat - now)))
  end

  -- How many more jobs the queue whose keys start with `base` may lease (feature `cap`): its
  -- max_in_flight less the leases held (an expired lease counts until reap ends it); nil when
  -- it has no cap (set to 0 since).
  function v.room(base)
    local cap = tonumber(redis.call('HGET', base .. 'meta', 'max_in_flight'))
    if not cap or cap <= 0 then return nil end
    return cap - redis.call('ZCARD', base .. 'leases')
  end

  -- How long until the next job may go under the rate limit `rate` (ms, at least 1), or -1
  -- when one may go now or the queue has no limit.
  function v.rate_wait(rate, now)
    if not rate or rate.left > 0 then return -1 end
    return math.max(1, math.ceil(rate.tat - (rate.burst - 1) * rate.t - now))
  end

  -- Priorities (feature `priority`): levels 0 to 9, 9 served first. A job at level 5, the
  -- normal one, waits in `waiting`, so that a queue where nobody sets a priority is as it
  -- was; a job at another level L waits in `waiting:L`, and `priority` (id -> L) remembers
  -- its level while the queue keeps the job, so that a job that comes back (released, its
  -- lease expired, its backoff over, promoted, retried from the dead list) joins the list of
  -- its own level. Within a level, FIFO holds as in `waiting`.
  local NORMAL = 5

  -- The lists of the queue whose keys start with `base`, the first served first.
  function v.lists(base)
    local lists = {}
    for level = 9, 0, -1 do
      lists[#lists + 1] = level == NORMAL and base .. 'waiting' or base .. 'waiting:' .. level
    end
    return lists
  end

  -- The level a push names by the list it gives (`waiting` for 5, `waiting:L` for another),
  -- as a number; raises SQUE_INVALID for a key that is neither.
  function v.level_named(base, list)
    if list == base .. 'waiting' then return NORMAL end
    local level = string.match(list, ':waiting:([0-9])$')
    if not level or list ~= base .. 'waiting:' .. level or tonumber(level) == NORMAL then
      error({err = 'SQUE_INVALID ' .. string.format('%q', string.sub(list, 1, 80)) ..
        ' is not a list of this queue\'s levels: ' .. base .. 'waiting (level 5) or ' .. base ..
        'waiting:L for L from 0 to 9 but 5'})
    end
    return tonumber(level)
  end

  -- Jobs `first` to `last` were pushed at `level` (not NORMAL): the queue requires
  -- `priority` from now on (`s`, open_call's, says so too), and their level is recorded.
  function v.enter_level(meta, s, first, last, level)
    -- (Read again: the call may have required another feature since it opened.)
    since_1_1().require_feature(meta, redis.call('HGET', meta, 'requires'), 'priority')
    s.uses = s.uses or {}
    s.uses.priority = true
    -- HSET takes many fields at once: one call per 1,000 jobs, within Lua's stack.
    local fields = {}
    for id = first, last do
      fields[#fields + 1] = string.format('%d', id)
      fields[#fields + 1] = level
      if #fields == 2000 or id == last then
        redis.call('HSET', key_base(meta) .. 'priority', unpack(fields))
        fields = {}
      end
    end
  end

  -- The list job `id` waits in when it comes back to the queue: its level's.
  function v.list_of(base, id)
    local level = redis.call('HGET', base .. 'priority', id)
    return level and base .. 'waiting:' .. level or base .. 'waiting'
  end

  -- Appends `items` to the tails of their jobs' lists (an item that does not parse: to
  -- `waiting`), in order within each list.
  function v.append(base, items)
    local ids = {}
    for i, item in ipairs(items) do ids[i] = parse_item(item) or '' end
    local levels = redis.call('HMGET', base .. 'priority', unpack(ids))
    local by_list, order = {}, {}
    for i, item in ipairs(items) do
      local list = levels[i] and base .. 'waiting:' .. levels[i] or base .. 'waiting'
      if not by_list[list] then by_list[list] = {}; order[#order + 1] = list end
      local l = by_list[list]
      l[#l + 1] = item
    end
    for _, list in ipairs(order) do redis.call('RPUSH', list, unpack(by_list[list])) end
  end

  -- How many jobs wait, at every level.
  function v.count_waiting(base)
    local n = 0
    for _, list in ipairs(v.lists(base)) do n = n + redis.call('LLEN', list) end
    return n
  end

  -- The first `n` items of `lists` in order of service (at most `n`), taken (LPOP), or nil;
  -- and each one's level.
  function v.take(lists, n)
    local items, levels = {}, {}
    for i, list in ipairs(lists) do
      local got = redis.call('LPOP', list, n - #items)
      if got then
        for _, item in ipairs(got) do
          items[#items + 1] = item
          levels[#items] = 10 - i
        end
        if #items == n then break end
      end
    end
    if #items == 0 then return nil end
    return items, levels
  end

  -- The push records of the jobs of `level` (each level keeps its own, so that `reap` keeps
  -- what each level's waiting jobs need): `pushed` for 5, `pushed:L` for another.
  function v.records(base, level)
    if not level or level == NORMAL then return base .. 'pushed' end
    return base .. 'pushed:' .. level
  end

  -- `push_times` for a batch taken from the lists of every level (`levels`, of `take`): each
  -- level's jobs by its own records.
  function v.push_times_by_level(base, parsed, levels)
    local by_level = {}
    for i, p in ipairs(parsed) do
      local l = by_level[levels[i]]
      if not l then l = {}; by_level[levels[i]] = l end
      l[#l + 1] = p
    end
    local at = {}
    for level, some in pairs(by_level) do
      for id, ms in pairs(v.push_times(v.records(base, level), some) or {}) do at[id] = ms end
    end
    return at
  end

  measures = v
  return v
end

-- Handing jobs out, made when needed (once per call that serves), like the dead list's
-- helpers: a push that meets no waiting worker never needs it.
local function server()
  local srv = {}

  -- Gives out waiting jobs to `requests` ({worker, seq} pairs, in order), oldest job to
  -- oldest request, while jobs wait. Each waiting item becomes a delivery: the attempt goes
  -- up by one, the lease (token "id|attempt|max") is scored by its deadline, and
  -- {"r":seq,"t":token,"d":data} goes to the worker's inbox, or, with `q.out`, is appended to
  -- it (the caller returns it in its reply). With `timed` (the worker reads protocol 1.2's
  -- deliveries), and while a worker that reads waits renews (`q.waits`, from meta's
  -- `waits_until`), a first attempt whose push is recorded carries how long it waited, in ms
  -- on Redis's clock, between the token and the data: {"r":seq,"t":token,"w":ms,"d":data}.
  -- An item that cannot be delivered (it does not parse, its data is missing or over the
  -- queue's size limit) is poison: it goes to the dead list at once and the request is
  -- served by the next job; so does a job cancelled while it waited (its data is the empty
  -- string), which is dropped. Batched: one LPOP, one HMGET and one ZADD serve all the
  -- requests that jobs are left for. Returns how many requests were served; the rest are
  -- left to the caller.
  -- `q`: {jobs = key, leases = key, base = "P:{Q}:", deadline = ms (text), max_attempts =
  -- the queue's (text), now = ms, s = settings, out = table or nil, waits = boolean, room and
  -- rate (`serving`)}
  function srv.serve(q, waiting, requests, timed)
    -- A paused queue hands nothing out; the requests are stored and served on resume.
    if q.s.paused then return 0 end
    local served = 0
    -- On a queue whose jobs push follow-ups (feature `children`), the staged lists of the
    -- tokens given out here, deleted (see below).
    local uses_children = q.s.uses and q.s.uses.children or false
    while served < #requests do
      local wanted = #requests - served
      -- A capped queue hands out no more than its room, a rate-limited one no more than its
      -- rate allows now (`serving`).
      if q.room then
        if q.room <= 0 then break end
        wanted = math.min(wanted, q.room)
      end
      if q.rate then
        if q.rate.left <= 0 then break end
        wanted = math.min(wanted, q.rate.left)
      end
      -- A queue with priorities (`serving`) takes from its levels' lists, highest first.
      local items, levels
      if q.lists then items, levels = since_1_2().take(q.lists, wanted) else items = redis.call('LPOP', waiting, wanted) end
      if not items then break end
      local parsed, ids = {}, {}
      for i, item in ipairs(items) do
        local id, attempts, max = parse_item(item)
        parsed[i] = {id, attempts, max}
        ids[i] = id or ''
      end
      local data = redis.call('HMGET', q.jobs, unpack(ids))
      local pushed_at
      if timed and q.waits then
        local m = since_1_2()
        if levels then pushed_at = m.push_times_by_level(q.base, parsed, levels)
        else pushed_at = m.push_times(q.base .. 'pushed', parsed) end
      end
      local leases, stale = {}, uses_children and {}
      for i, p in ipairs(parsed) do
        local id = p[1]
        -- A first attempt, nearly every job's, needs no number formatted (see `serving`).
        local attempt = id and (p[2] == '0' and '1' or tonumber(p[2]) + 1)
        local token = id and (id .. '|' .. attempt .. '|' .. (p[3] == '' and q.max_attempts or p[3]))
        local problem
        if not id then
          problem = 'item ' .. string.format('%q', string.sub(items[i], 1, 80)) .. ' in waiting is not ID|ATTEMPTS[|MAX]'
        elseif not data[i] then
          problem = 'data is missing from jobs'
        elseif #data[i] > q.s.max_job_bytes then
          problem = 'data is ' .. #data[i] .. ' bytes, over the queue\'s limit of ' .. q.s.max_job_bytes
        end
        if problem then
          local d = graveyard()
          d.bury_poison(d.keys(q.base), q.s, token or items[i], id or items[i], problem, q.now)
        elseif data[i] == '' then
          -- Cancelled while it waited (`cancel`): dropped, and the request goes to the next.
          redis.call('HDEL', q.jobs, id)
          if q.lists then redis.call('HDEL', q.base .. 'priority', id) end
        else
          served = served + 1
          local worker, seq = requests[served][1], requests[served][2]
          leases[#leases + 1] = q.deadline
          leases[#leases + 1] = token
          -- A token is given out again after `dead retry` (attempts start again) or a
          -- `release`: what an attempt of that token staged before is not this attempt's,
          -- and its completion must not commit it.
          if uses_children then stale[#stale + 1] = q.base .. 'staged:' .. token end
          local at = pushed_at and pushed_at[id]
          local delivery
          if at then
            delivery = '{"r":"' .. seq .. '","t":"' .. token .. '","w":' ..
              string.format('%d', math.max(0, q.now - at)) .. ',"d":' .. data[i] .. '}'
          else
            delivery = '{"r":"' .. seq .. '","t":"' .. token .. '","d":' .. data[i] .. '}'
          end
          if q.out then
            q.out[#q.out + 1] = delivery
          else
            local inbox = q.base .. 'inbox:' .. worker
            redis.call('RPUSH', inbox, delivery)
            redis.call('PEXPIRE', inbox, q.s.inbox_ttl)
          end
        end
      end
      if stale and #stale > 0 then redis.call('DEL', unpack(stale)) end
      if #leases > 0 then
        redis.call('ZADD', q.leases, unpack(leases))
        if q.room then q.room = q.room - #leases / 2 end
        if q.rate then since_1_2().spend_rate(q.rate, #leases / 2, q.now) end
      end
      if #items < wanted then break end
    end
    return served
  end

  -- On a queue that requires `cap`, `room` is how many more jobs may be leased (`room`);
  -- `serve` takes from it. On a queue that requires `rate`, `rate` is its limit's state
  -- (`rate_state`). On a queue that requires `priority`, `lists` are its levels' lists
  -- (`lists`), which `serve` takes from, highest first. Without them, nothing is read for any.
  function srv.serving(base, s, now, out)
    local q = {jobs = base .. 'jobs', leases = base .. 'leases', base = base, now = now,
               deadline = string.format('%d', now + s.lease),
               max_attempts = string.format('%d', s.max_attempts), s = s, out = out,
               waits = s.waits_until ~= nil and s.waits_until > now}
    if s.uses then
      if s.uses.cap then q.room = since_1_2().room(base) end
      if s.uses.rate then q.rate = since_1_2().rate_state(base, now) end
      if s.uses.priority then q.lists = since_1_2().lists(base) end
    end
    return q
  end

  -- Serves stored requests ("worker:seq" in `keys.requests`, oldest first) with waiting jobs,
  -- oldest with oldest, up to `max_pairs`. A request of a worker whose heartbeat ran out is
  -- dropped. The deliveries carry their wait to a worker that reads it.
  -- Returns how many were served (and counts them as dispatched).
  -- `keys`: {waiting, requests, workers, stats}
  function srv.dispatch_stored(q, keys, max_pairs, now)
    if q.s.paused then return 0 end
    local alive, timed = {}, {}
    local n = 0
    -- With priorities, whether a job waits is counted once, and then `serve` tells.
    local some_wait = q.lists and since_1_2().count_waiting(q.base) > 0
    while n < max_pairs and (q.lists and some_wait or not q.lists and redis.call('LLEN', keys.waiting) > 0) do
      local req = redis.call('LPOP', keys.requests)
      if not req then break end
      -- A request that is not "W:S" (both decimal) is dropped: no worker could route its job.
      local worker, seq = string.match(req, '^(%d+):(%d+)$')
      if worker then
        if alive[worker] == nil then
          local until_ms = redis.call('ZSCORE', keys.workers, worker)
          alive[worker] = until_ms and tonumber(until_ms) > now or false
          -- While waits are measured, a worker whose renew recorded protocol 1.2 or later
          -- (in `protocols`) reads a delivery's wait; one of 1.1 recorded none.
          if alive[worker] and q.waits then
            local major, minor = string.match(
              redis.call('HGET', q.base .. 'protocols', worker) or '', '^(%d+)%.(%d+)')
            timed[worker] = major ~= nil and (tonumber(major) > 1 or tonumber(minor) >= 2)
          end
        end
        if alive[worker] then
          if srv.serve(q, keys.waiting, {{worker, seq}}, timed[worker]) == 1 then
            n = n + 1
          else
            -- No job left after all (purged data): the request keeps its place.
            redis.call('LPUSH', keys.requests, req)
            break
          end
        end
      end
    end
    if n > 0 then redis.call('HINCRBY', keys.stats, 'dispatched', n) end
    return n
  end

  return srv
end
