// Types of the sque package (clients/node). The protocol is docs/PROTOCOL.md in the repository.

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Where Redis is: `url` (redis://, rediss://, redis+cluster://, redis+sentinel://) and any node-redis client options. */
export interface RedisOptions {
  /** Default: SQUE_REDIS_URL, else redis://127.0.0.1:6379. */
  url?: string;
  [option: string]: unknown;
}

/**
 * Settings a queue gets when this program creates it; an existing queue keeps its own. Times
 * in ms (at most 100 years), sizes in bytes, counts: whole numbers. Settings that cannot work
 * together (a lease under 100 ms, an inboxTtl under the lease, maxAttempts over 999999999, a
 * backoff over backoffMax, maxJobBytes of 0 or over 512 MiB, maxErrorBytes under 64, ...) are
 * refused by the constructor with code "invalid_input", before anything is written.
 */
export interface QueueSettings {
  lease?: number;
  inboxTtl?: number;
  maxAttempts?: number;
  maxJobBytes?: number;
  backoff?: number;
  backoffMax?: number;
  resultTtl?: number;
  resultMax?: number;
  deadMax?: number;
  deadTtl?: number;
  maxResultBytes?: number;
  maxErrorBytes?: number;
  /** The most jobs leased at once, across every worker (0: no cap). */
  maxInFlight?: number;
  /** A rate limit: at most rateCount jobs handed out per ratePeriod ms (0: no limit). */
  rateCount?: number;
  ratePeriod?: number;
  /** How many jobs may go at once after a quiet spell (0: rateCount). */
  rateBurst?: number;
}

export interface Options extends QueueSettings {
  redis?: RedisOptions;
  /** Key prefix, default "sque". */
  prefix?: string;
  /** The node-redis module to use (default: require('redis')). */
  redisModule?: unknown;
}

export interface ManagerOptions extends Options {
  /** Whether this manager serves stored requests and reaps expired leases (default true). */
  dispatch?: boolean;
}

/** The queue's settings as Redis holds them (snake_case, ms, bytes, counts). */
export interface StoredSettings {
  lease: number;
  inbox_ttl: number;
  max_attempts: number;
  max_job_bytes: number;
  backoff: number;
  backoff_max: number;
  result_ttl: number;
  result_max: number;
  dead_max: number;
  dead_ttl: number;
  max_result_bytes: number;
  max_error_bytes: number;
  /** The most jobs leased at once, across every worker (0: no cap). */
  max_in_flight: number;
  /** The rate limit: at most rate_count jobs per rate_period ms (0: no limit), bursts of rate_burst (0: rate_count). */
  rate_count: number;
  rate_period: number;
  rate_burst: number;
}

export interface Stats {
  queue: string;
  waiting: number;
  in_flight: number;
  /** Retries waiting for their backoff to end. */
  delayed: number;
  /** Jobs pushed with a delay or a time, not yet due. */
  scheduled: number;
  /** Whether the queue is paused (`pause()`). */
  paused: boolean;
  dead: number;
  workers: number;
  requests: number;
  pushed: number;
  dispatched: number;
  completed: number;
  retried: number;
  dead_lettered: number;
  expired: number;
  poisoned: number;
  dead_dropped: number;
}

export interface PushOptions {
  /** This job's attempt limit (1 to 999999999); default: the queue's max_attempts. */
  maxAttempts?: number;
  /** Ready this many ms after the push, on Redis's clock. Not with `at`. */
  delay?: number;
  /** Ready at this time (a Date, or ms since the epoch), on Redis's clock. Not with `delay`. */
  at?: Date | number;
  /** A key unique within the queue (1 to 1024 bytes): `push` only, not `pushMany`. */
  uniqueKey?: string;
  /** How long (ms) the unique key stays held after its job completed; none by default. */
  uniqueFor?: number;
  /** 'high' (9), 'normal' (5, the default), 'low' (0), or 0 to 9: higher goes first. */
  priority?: 'high' | 'normal' | 'low' | number;
}

export type ErrorCode =
  | 'invalid_input'
  | 'invalid_queue_name'
  | 'too_large'
  | 'no_such_queue'
  | 'protocol'
  | 'feature'
  | 'unavailable'
  | 'stale_lease'
  | 'cancelled'
  | 'closed'
  | 'timeout'
  | 'dead'
  | 'redis';

/** The package's one error type: `code` says what went wrong, the message what to do. */
export class SqueError extends Error {
  readonly code: ErrorCode;
}

/** The original design's main server: stores jobs, and hands them to free workers. */
export class Manager {
  constructor(queName: string, options?: ManagerOptions);
  /**
   * Resolves once the queue is open (and, unless dispatch is false, being served). Rejects
   * with code "unavailable" when Redis cannot be reached then (make a new manager to try
   * again), "feature" when a manager that dispatches opens a queue with cron schedules or
   * follow-up jobs.
   */
  readonly ready: Promise<Manager>;
  /**
   * Whether this manager dispatches, reaps and promotes now. A manager that dispatches stops
   * (with a process warning, a SqueError of code "feature") when the queue comes to have cron
   * schedules or follow-up jobs after it opened; it still pushes.
   */
  readonly dispatching: boolean;
  /** The queue's settings (after `ready`). */
  readonly settings: StoredSettings;
  /**
   * Adds a job at the tail of the queue; resolves to its id. Data that is not JSON (a
   * function, undefined, a cycle, NaN or an infinity, a string with a lone UTF-16
   * surrogate), nested 128 levels or more, or over max_job_bytes is refused with nothing
   * pushed. Pushes reach Redis in the order they were made, whatever their options.
   */
  push(params: unknown, options?: PushOptions): Promise<string>;
  /** Adds jobs in order, 1,000 per script call; one bad job fails the call with nothing pushed. */
  pushMany(list: Iterable<unknown>, options?: PushOptions): Promise<string[]>;
  /**
   * Waits for a job's result (null when it left none); rejects with code "dead" (it went to
   * the dead list), "cancelled" (it was cancelled) or "timeout".
   */
  wait(id: string, options?: { timeout?: number; every?: number }): Promise<Json>;
  /** Pauses the queue: no job is handed out, by any host, until resume(). False if it was paused already. */
  pause(): Promise<boolean>;
  /** Resumes a paused queue. False if it was not paused. */
  resume(): Promise<boolean>;
  stats(): Promise<Stats>;
  /** Stops serving and reaping and lets go of the connection. */
  close(): Promise<void>;
}

/** One delivery of a job, held under a lease renewed until it is ended. */
export class Job {
  readonly id: string;
  readonly queue: string;
  readonly data: Json;
  /** 1 on the first delivery, one more on each later one. */
  readonly attempt: number;
  /** The id given to iAmFree, if any. */
  readonly requestId: string | undefined;
  /** The fencing token of this delivery: ID|ATTEMPT|MAX. */
  readonly token: string;
  /**
   * How long the job waited in the queue, from its push to this delivery (ms, Redis's clock),
   * with `measureWaits`; undefined for a retry, or when the queue no longer kept its push time.
   */
  readonly waited?: number;
  /**
   * Whether complete, fail or release was called and answered (or is on its way). A call
   * that got no answer (code "unavailable") leaves it false: the job is still held and its
   * lease renewed, so call again (a completion that did reach Redis is then refused with
   * "stale_lease", and changes nothing).
   */
  readonly ended: boolean;
  /** Marks the job done, keeping `result` readable through manager.wait(id). Rejects with code "stale_lease" when the lease ran out. */
  complete(result?: unknown): Promise<void>;
  /** Retried after a backoff (dead once out of attempts), or with permanent straight to the dead list. */
  fail(error: unknown, options?: { permanent?: boolean; code?: string }): Promise<{ retryAfterMs: number } | { dead: true }>;
  /** Gives the job back to the head of the queue, its attempt not counted. */
  release(): Promise<void>;
}

export type Done = (error: SqueError | null, jobData: Json, job: Job) => unknown;

/** The original design's worker: asks for jobs when it is free. */
export interface ClientOptions extends Options {
  /** Jobs say how long they waited since their push (`job.waited`); costs Redis about a microsecond a job. */
  measureWaits?: boolean;
}

export class Client {
  constructor(queName: string, options?: ClientOptions);
  readonly ready: Promise<Client>;
  /** The jobs this client holds (delivered, not yet ended). */
  readonly heldCount: number;
  /** Callback form: `done` runs on the job's data; the job completes when it returns (or its Promise resolves), fails when it throws (or rejects). */
  iAmFree(done: Done): void;
  iAmFree(id: string, done: Done): void;
  /** Promise form: resolves to the Job; end it with complete, fail or release. */
  iAmFree(id?: string): Promise<Job>;
  /**
   * Runs `handler` on every job, `concurrency` at a time, until close(). A job whose
   * completion or failure got no answer (Redis away) is let go: its lease runs out and it
   * comes back, as after a worker's death.
   */
  process(handler: (data: Json, job: Job) => unknown, options?: { concurrency?: number }): Promise<void>;
  /** Leaves cleanly: open requests withdrawn, the inbox given back, the heartbeat dropped. */
  close(): Promise<void>;
}

declare const sque: {
  manager: typeof Manager;
  client: typeof Client;
  Manager: typeof Manager;
  Client: typeof Client;
  Job: typeof Job;
  SqueError: typeof SqueError;
  PROTOCOL: string;
  DEFAULT_SETTINGS: Readonly<StoredSettings>;
};

export { Manager as manager, Client as client };
export const PROTOCOL: string;
export const DEFAULT_SETTINGS: Readonly<StoredSettings>;
export default sque;
