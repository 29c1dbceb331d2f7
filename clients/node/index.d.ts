// Types of the sque package (clients/node). The protocol is docs/PROTOCOL.md in the repository.

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Where Redis is: `url` (redis://, rediss://, redis+cluster://, redis+sentinel://) and any node-redis client options. */
export interface RedisOptions {
  /** Default: SQUE_REDIS_URL, else redis://127.0.0.1:6379. */
  url?: string;
  [option: string]: unknown;
}

/** Settings a queue gets when this program creates it; an existing queue keeps its own. Times in ms. */
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
}

export interface Stats {
  queue: string;
  waiting: number;
  in_flight: number;
  delayed: number;
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
  /** Resolves once the queue is open (and, unless dispatch is false, being served). */
  readonly ready: Promise<Manager>;
  /** The queue's settings (after `ready`). */
  readonly settings: StoredSettings;
  /** Adds a job at the tail of the queue; resolves to its id. */
  push(params: unknown, options?: PushOptions): Promise<string>;
  /** Adds jobs in order, 1,000 per script call; one bad job fails the call with nothing pushed. */
  pushMany(list: Iterable<unknown>, options?: PushOptions): Promise<string[]>;
  /** Waits for a job's result (null when it left none); rejects with code "dead" or "timeout". */
  wait(id: string, options?: { timeout?: number; every?: number }): Promise<Json>;
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
  /** Whether complete, fail or release was called. */
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
  /** Runs `handler` on every job, `concurrency` at a time, until close(). */
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
