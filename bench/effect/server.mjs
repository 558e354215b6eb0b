// bench-effect: cloud-api's users contract written with the source
// documents' own stack: @effect/platform's HttpApi on Node.js, @effect/sql-pg,
// and the database provided per request only to the handlers that need it,
// as the second source document proposes ("Approach 3": a `Database` tag, a
// scoped layer, `Effect.provide(DatabaseLive)` at handler level; health gets
// none). The SQL, statement for statement, is bench/baseline's
// (src/auth.rs, src/users.rs), which is cloud-api's.
//
//   node server.mjs --listen 127.0.0.1:8083 --database-url postgres://... \
//     --db-mode pool|per-request --pool-size 16
//
// Plain JavaScript (ES modules) rather than TypeScript: what runs is the
// same Effect code either way, and the bench then needs no compiler step.

import { createServer } from "node:http"
import { createHash, timingSafeEqual } from "node:crypto"

import {
  HttpApi,
  HttpApiBuilder,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpApiSchema,
  HttpMiddleware,
  HttpServer,
  HttpServerResponse
} from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import * as Reactivity from "@effect/experimental/Reactivity"
import { Context, Duration, Effect, Layer, Logger, LogLevel, Redacted, Schema } from "effect"

// ---------------------------------------------------------------- settings

function parseArgs(argv) {
  const settings = { listen: "127.0.0.1:8083", databaseUrl: process.env.DATABASE_URL, mode: "pool", poolSize: 16 }
  for (let i = 0; i < argv.length; i++) {
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`)
      return argv[++i]
    }
    switch (argv[i]) {
      case "--listen": settings.listen = value(); break
      case "--database-url": settings.databaseUrl = value(); break
      case "--db-mode": settings.mode = value(); break
      case "--pool-size": settings.poolSize = Number(value()); break
      default: throw new Error(`unknown argument ${argv[i]}`)
    }
  }
  if (!settings.databaseUrl) throw new Error("--database-url (or DATABASE_URL) is required")
  if (settings.mode !== "pool" && settings.mode !== "per-request") throw new Error("--db-mode is pool or per-request")
  if (!(settings.poolSize >= 1)) throw new Error("--pool-size must be at least 1")
  return settings
}

const settings = parseArgs(process.argv.slice(2))
const [host, port] = [settings.listen.slice(0, settings.listen.lastIndexOf(":")), Number(settings.listen.slice(settings.listen.lastIndexOf(":") + 1))]

// Both Rust servers' settings: the same acquire/connect timeout (5 s) and
// an application_name the runner counts backends by.
const pgOptions = {
  url: Redacted.make(settings.databaseUrl),
  applicationName: "bench-effect",
  connectTimeout: Duration.seconds(5)
}

// ---------------------------------------------------------------- the API

// `{"error": "..."}` with a status: one schema per status, told apart on
// encoding by the status the handler fails with, which is not sent.
const apiError = (status) =>
  Schema.transform(
    Schema.Struct({ error: Schema.String }),
    Schema.Struct({ status: Schema.Literal(status), error: Schema.String }),
    { strict: true, decode: (e) => ({ status, error: e.error }), encode: (e) => ({ error: e.error }) }
  ).annotations(HttpApiSchema.annotations({ status }))
const errors = [400, 401, 404, 409, 415, 500, 503].map(apiError)
const fail = (status, error) => Effect.fail({ status, error })
const withErrors = (endpoint) => errors.reduce((e, schema) => e.addError(schema), endpoint)

const User = Schema.Struct({ id: Schema.Number, name: Schema.String, email: Schema.String, created_at: Schema.String })
const UserList = Schema.Struct({ users: Schema.Array(User), total: Schema.Number })

class SystemApi extends HttpApiGroup.make("system").add(
  HttpApiEndpoint.get("health", "/api/health").addSuccess(Schema.Struct({ status: Schema.String }))
) {}

class UsersApi extends HttpApiGroup.make("users")
  .add(withErrors(
    HttpApiEndpoint.get("list", "/api/users")
      .setUrlParams(Schema.Struct({ limit: Schema.optional(Schema.String), offset: Schema.optional(Schema.String) }))
      .addSuccess(UserList)
  ))
  .add(withErrors(
    HttpApiEndpoint.get("get", "/api/users/:id").setPath(Schema.Struct({ id: Schema.String })).addSuccess(User)
  ))
  .add(withErrors(HttpApiEndpoint.post("create", "/api/users").addSuccess(User, { status: 201 })))
{}

class Api extends HttpApi.make("cloud-api").add(SystemApi).add(UsersApi) {}

// ---------------------------------------------------------------- the database, per handler

// What a handler that needs the database asks for: one connection for the
// whole request (authentication and the endpoint's statements), released
// when the handler's scope closes.
class Database extends Context.Tag("Database")() {}

// Pool mode: one process-wide pool; each request leases one connection.
// Idle connections are kept, as the Rust servers' pools keep them (pg's
// default would close them after 10 s).
const PoolLive = Layer.scoped(
  PgClient.PgClient,
  PgClient.make({ ...pgOptions, maxConnections: settings.poolSize, idleTimeout: Duration.hours(1) })
)
const DatabaseFromPool = Layer.scoped(Database, Effect.flatMap(PgClient.PgClient, (client) => client.reserve))

// Per-request mode: the source document's DatabaseLive, a client made for
// the request and closed with it (PgClient.make checks the new connection
// with a `SELECT 1`, which the Rust servers do not send).
const DatabasePerRequest = Layer.scoped(
  Database,
  Effect.flatMap(PgClient.make({ ...pgOptions, maxConnections: 1 }), (client) => client.reserve)
)

const DatabaseLive = settings.mode === "pool" ? DatabaseFromPool : DatabasePerRequest
// Uninterruptible: the database work of a request whose client has gone
// finishes, as in the Rust servers. Interrupted, @effect/sql-pg cancels
// the running statement with `pg_cancel_backend` over a connection of the
// same pool: when every connection is held by an interrupted request (wrk
// closing 32 connections at the end of a run), the cancels wait for a
// connection forever and the server answers no database request again.
const withDatabase = (effect) => Effect.uninterruptible(Effect.provide(effect, DatabaseLive))

// cloud-api's mapping of the database errors these endpoints can meet.
const dbError = (e) => {
  const cause = e?.cause
  const code = typeof cause?.code === "string" ? cause.code : undefined
  if (code === "23505") {
    return { status: 409, error: cause.table === "users" ? "a user with this email already exists" : "the record already exists" }
  }
  if (code && (code.startsWith("22") || code === "23502" || code === "23514")) {
    return { status: 400, error: "a value is malformed or out of range" }
  }
  if (code === undefined || ["08", "57", "53", "28"].includes(code.slice(0, 2)) || code === "3D000") {
    return { status: 503, error: "the database is unavailable; try again shortly" }
  }
  return { status: 500, error: "internal error" }
}

const query = (text, params) =>
  Effect.flatMap(Database, (conn) => Effect.mapError(conn.execute(text, params, undefined), dbError))

// ---------------------------------------------------------------- authentication

const INVALID = "the bearer token is invalid or has been revoked"

const USER_COLUMNS = "id, name, email, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at"
const VISIBLE_TO_1 = "(id = $1 OR created_by = $1 OR id IN (SELECT theirs.user_id FROM memberships mine " +
  "JOIN memberships theirs ON theirs.org_id = mine.org_id WHERE mine.user_id = $1))"

const userFromRow = (row) => ({ id: Number(row.id), name: row.name, email: row.email, created_at: row.created_at })

// The header's shape is checked before any connection is made.
const bearerToken = (headers) => {
  const value = headers["authorization"]
  if (value === undefined) return fail(401, "missing bearer token: send `Authorization: Bearer <token>`")
  const space = value.indexOf(" ")
  const scheme = space < 0 ? "" : value.slice(0, space)
  const token = space < 0 ? "" : value.slice(space + 1).trim()
  if (space < 0) return fail(401, "the Authorization header must be `Bearer <token>`")
  if (scheme.toLowerCase() !== "bearer" || token === "") return fail(401, "the Authorization header must be `Bearer <token>`")
  return Effect.succeed(token)
}

// `pv_<id>_<64 lowercase hex>`, as cloud-api issues them.
const parseToken = (token) => {
  const m = /^pv_([0-9]+)_([0-9a-f]{64})$/.exec(token)
  if (!m) return undefined
  const id = BigInt(m[1])
  if (id <= 0n || id > 9223372036854775807n) return undefined
  return { id: id.toString(), secret: m[2] }
}

// Needs the Database: the token's user and the caller's memberships, with
// cloud-api's SQL.
const authenticate = (token) =>
  Effect.gen(function* () {
    const parsed = parseToken(token)
    if (!parsed) return yield* fail(401, INVALID)
    const rows = yield* query(
      "SELECT t.hash, u.id, u.name, u.email, " +
        "to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') " +
        "AS created_at FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1",
      [parsed.id]
    )
    if (rows.length === 0) return yield* fail(401, INVALID)
    const digest = Buffer.from(createHash("sha256").update(parsed.secret).digest("hex"))
    const stored = Buffer.from(String(rows[0].hash))
    if (digest.length !== stored.length || !timingSafeEqual(digest, stored)) return yield* fail(401, INVALID)
    const user = userFromRow(rows[0])
    const memberships = yield* query("SELECT org_id, role FROM memberships WHERE user_id = $1 ORDER BY org_id", [String(user.id)])
    return { user, memberships: memberships.map((m) => ({ orgId: Number(m.org_id), role: m.role })) }
  })

// ---------------------------------------------------------------- parsing, as the Rust servers answer

// Rust's `i64::from_str` messages, which the contract's answers carry.
const parseI64 = (text) => {
  if (text === "") return { error: "cannot parse integer from empty string" }
  if (!/^[+-]?[0-9]+$/.test(text)) return { error: "invalid digit found in string" }
  const n = BigInt(text)
  if (n > 9223372036854775807n) return { error: "number too large to fit in target type" }
  if (n < -9223372036854775808n) return { error: "number too small to fit in target type" }
  return { value: n }
}

const queryInt = (params, name) => {
  if (params[name] === undefined) return Effect.succeed(undefined)
  const parsed = parseI64(params[name])
  return parsed.error
    ? fail(400, `Failed to deserialize query string: ${name}: ${parsed.error}`)
    : Effect.succeed(parsed.value)
}

// ---------------------------------------------------------------- handlers

const list = ({ request, urlParams }) =>
  Effect.gen(function* () {
    const token = yield* bearerToken(request.headers)
    const limit = (yield* queryInt(urlParams, "limit")) ?? 50n
    const offset = (yield* queryInt(urlParams, "offset")) ?? 0n
    return yield* withDatabase(Effect.gen(function* () {
      const { user } = yield* authenticate(token)
      if (limit < 1n || limit > 500n) return yield* fail(400, "limit: must be between 1 and 500")
      if (offset < 0n) return yield* fail(400, "offset: must not be negative")
      const id = String(user.id)
      const rows = yield* query(
        `SELECT ${USER_COLUMNS}, count(*) OVER () AS total FROM users WHERE ${VISIBLE_TO_1} ORDER BY id LIMIT $2 OFFSET $3`,
        [id, limit.toString(), offset.toString()]
      )
      let total
      if (rows.length > 0) total = Number(rows[0].total)
      else if (offset === 0n) total = 0
      else total = Number((yield* query(`SELECT count(*) AS total FROM users WHERE ${VISIBLE_TO_1}`, [id]))[0].total)
      return { users: rows.map(userFromRow), total }
    }))
  })

const get = ({ request, path }) =>
  Effect.gen(function* () {
    const token = yield* bearerToken(request.headers)
    const parsed = parseI64(path.id)
    if (parsed.error) return yield* fail(400, `Invalid URL: Cannot parse \`${path.id}\` to a \`i64\``)
    return yield* withDatabase(Effect.gen(function* () {
      const { user } = yield* authenticate(token)
      const rows = yield* query(
        `SELECT ${USER_COLUMNS} FROM users WHERE id = $2 AND ${VISIBLE_TO_1}`,
        [String(user.id), parsed.value.toString()]
      )
      if (rows.length === 0) return yield* fail(404, "user not found")
      return userFromRow(rows[0])
    }))
  })

const validateName = (name) => {
  if (name.trim() === "") return "name: must not be empty"
  if ([...name].length > 200) return "name: must be at most 200 characters"
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return "name: must not contain control characters"
  return undefined
}

const validateEmail = (email) => {
  if (email === "") return "email: must not be empty"
  if ([...email].length > 320) return "email: must be at most 320 characters"
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f-\u009f]/.test(email)) return "email: must not contain whitespace"
  const at = email.indexOf("@")
  const [local, domain] = at < 0 ? ["", ""] : [email.slice(0, at), email.slice(at + 1)]
  if (local === "" || domain === "" || domain.includes("@")) return "email: must look like an email address (name@domain)"
  return undefined
}

// The body is read here (handleRaw), so that a malformed one is answered
// as the Rust servers answer it: `{"error": ...}` with 400 or 415.
const readNewUser = (request) =>
  Effect.gen(function* () {
    const contentType = request.headers["content-type"] ?? ""
    if (!/^application\/([^;]*\+)?json\s*(;|$)/i.test(contentType)) {
      return yield* fail(415, "Expected request with `Content-Type: application/json`")
    }
    const text = yield* Effect.mapError(request.text, () => ({ status: 400, error: "Failed to buffer the request body" }))
    let body
    try {
      body = JSON.parse(text)
    } catch (e) {
      return yield* fail(400, `Failed to parse the request body as JSON: ${e.message}`)
    }
    for (const field of ["name", "email"]) {
      if (body === null || typeof body !== "object" || Array.isArray(body) || body[field] === undefined) {
        return yield* fail(400, `Failed to deserialize the JSON body into the target type: missing field \`${field}\``)
      }
      if (typeof body[field] !== "string") {
        return yield* fail(400, `Failed to deserialize the JSON body into the target type: ${field}: invalid type, expected a string`)
      }
    }
    return { name: body.name, email: body.email }
  })

const create = ({ request }) =>
  Effect.gen(function* () {
    const token = yield* bearerToken(request.headers)
    // The body is read before the connection is taken, and its error kept
    // for after authentication (a bad token answers 401 first, as in the
    // Rust servers): a client that goes away mid-body then holds nothing
    // (read under the connection, with the database work uninterruptible,
    // such reads never ended and kept all 16 connections).
    const body = yield* Effect.either(readNewUser(request))
    return yield* withDatabase(Effect.gen(function* () {
      const { user } = yield* authenticate(token)
      const input = body._tag === "Right" ? body.right : yield* Effect.fail(body.left)
      const invalid = validateName(input.name) ?? validateEmail(input.email)
      if (invalid) return yield* fail(400, invalid)
      yield* query("BEGIN", [])
      const inserted = yield* query(
        `INSERT INTO users (name, email, created_by) VALUES ($1, $2, $3) RETURNING ${USER_COLUMNS}`,
        [input.name, input.email, String(user.id)]
      ).pipe(Effect.tapError(() => Effect.ignore(query("ROLLBACK", []))))
      yield* query("COMMIT", [])
      return userFromRow(inserted[0])
    }))
  })

const SystemLive = HttpApiBuilder.group(Api, "system", (handlers) =>
  handlers.handle("health", () => Effect.succeed({ status: "ok" }))
)

const UsersLive = HttpApiBuilder.group(Api, "users", (handlers) =>
  handlers.handle("list", list).handle("get", get).handleRaw("create", create)
)

// ---------------------------------------------------------------- the server

// Unknown routes answer as the Rust servers do (an API-level middleware:
// it wraps the router, before failures become responses).
const notFound = (app) =>
  Effect.catchTag(app, "RouteNotFound", (e) =>
    HttpServerResponse.json(
      { error: `no route for ${e.request.method} ${new URL(e.request.url, "http://x").pathname}` },
      { status: 404 }
    )
  )

const ApiLive = HttpApiBuilder.api(Api).pipe(Layer.provide([SystemLive, UsersLive]))

// As both Rust servers run (RUST_LOG=warn): each request's access log line
// is made and filtered out.
const observe = (app) => HttpMiddleware.logger(app).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))

const ServerLive = HttpApiBuilder.serve(observe).pipe(
  Layer.provide(HttpApiBuilder.middleware(notFound)),
  Layer.provide(ApiLive),
  HttpServer.withLogAddress,
  Layer.provide(NodeHttpServer.layer(createServer, { port, host })),
  Layer.provide(settings.mode === "pool" ? PoolLive : Layer.empty),
  Layer.provide(Reactivity.layer),
  Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
)

NodeRuntime.runMain(Layer.launch(ServerLive))
