// A real Better Auth server for gatehouse's conformance tests.
//
// Email + password sign-in, the jwt() plugin (JWKS at /api/auth/jwks, JWTs at
// /api/auth/token and in the `set-auth-jwt` header of get-session) and the
// bearer() plugin (session token as `Authorization: Bearer`); on request the
// admin() plugin (bans), the organization() plugin (members and roles) and a
// `sid` claim naming the session in every JWT. It does not send mail, serve
// an app or listen anywhere but 127.0.0.1.
//
// Environment:
//   PORT                  port on 127.0.0.1 (required)
//   BETTER_AUTH_URL       baseURL, also the JWT issuer and audience (default http://127.0.0.1:$PORT)
//   BETTER_AUTH_SECRET    cookie-signing and key-encryption secret (required)
//   JWT_ALG               EdDSA (default) | ES256 | ES512 | RS256 | PS256
//   JWT_ROTATION_SECONDS  key rotation interval (off when unset)
//   JWT_GRACE_SECONDS     how long rotated-out keys stay published
//   BEARER_PLUGIN         "off" leaves out the bearer() plugin (cookies only)
//   SID_CLAIM             "on": JWTs carry `sid`, the id of their session
//                         (jwt.definePayload: {...user, sid: session.id})
//   ADMIN_PLUGIN          "on" adds the admin() plugin (/api/auth/admin/*:
//                         ban-user, unban-user, …; "user".role, banned,
//                         "banReason", "banExpires")
//   ADMIN_EMAILS          comma-separated emails that sign up with role "admin"
//   ORG_PLUGIN            "on" adds the organization() plugin
//                         (/api/auth/organization/*; tables "organization",
//                         "member", "invitation"; "session"."activeOrganizationId")
//   DATABASE_URL          Postgres (Better Auth's own migration runs at start); memory otherwise
//
// Also serves GET /__stats: {"getSession": n, "requests": n}, so tests can
// assert how often gatehouse asked.
import http from "node:http";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";
import { admin, bearer, jwt, organization } from "better-auth/plugins";

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error("PORT must be set to a port number");
  process.exit(2);
}
const secret = process.env.BETTER_AUTH_SECRET;
if (!secret) {
  console.error("BETTER_AUTH_SECRET must be set");
  process.exit(2);
}
const baseURL = process.env.BETTER_AUTH_URL || `http://127.0.0.1:${port}`;
const alg = process.env.JWT_ALG || "EdDSA";
const keyPairConfig = alg === "EdDSA" ? { alg, crv: "Ed25519" } : { alg };
const jwks = { keyPairConfig };
const on = (name) => process.env[name] === "on";
if (process.env.JWT_ROTATION_SECONDS) {
  jwks.rotationInterval = Number(process.env.JWT_ROTATION_SECONDS);
}
if (process.env.JWT_GRACE_SECONDS) {
  jwks.gracePeriod = Number(process.env.JWT_GRACE_SECONDS);
}

let database;
let pool;
if (process.env.DATABASE_URL) {
  const { Pool } = await import("pg");
  pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
  database = pool;
} else {
  database = memoryAdapter({
    user: [],
    session: [],
    account: [],
    verification: [],
    jwks: [],
    organization: [],
    member: [],
    invitation: [],
  });
}

const jwtOptions = { jwks };
if (on("SID_CLAIM")) {
  jwtOptions.jwt = { definePayload: ({ user, session }) => ({ ...user, sid: session.id }) };
}
const plugins = [jwt(jwtOptions)];
if (process.env.BEARER_PLUGIN !== "off") plugins.push(bearer());
if (on("ADMIN_PLUGIN")) plugins.push(admin());
if (on("ORG_PLUGIN")) plugins.push(organization());

// Users signing up with one of these emails get role "admin" (the admin
// plugin's own hook keeps a role that is already set).
const adminEmails = (process.env.ADMIN_EMAILS || "")
  .split(",")
  .map((e) => e.trim().toLowerCase())
  .filter(Boolean);
const databaseHooks = {
  user: {
    create: {
      async before(user) {
        if (adminEmails.includes(String(user.email).toLowerCase())) {
          return { data: { ...user, role: "admin" } };
        }
      },
    },
  },
};

const options = {
  baseURL,
  secret,
  database,
  trustedOrigins: [baseURL],
  emailAndPassword: { enabled: true },
  plugins,
  databaseHooks,
  telemetry: { enabled: false },
  // No rate limiting: tests sign in many times from one address.
  rateLimit: { enabled: false },
};

if (pool) {
  const { runMigrations } = await getMigrations(options);
  await runMigrations();
}

const auth = betterAuth(options);
const handler = toNodeHandler(auth);
const stats = { getSession: 0, requests: 0 };

const server = http.createServer((req, res) => {
  if (req.url === "/__stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(stats));
    return;
  }
  stats.requests += 1;
  if (req.url && req.url.startsWith("/api/auth/get-session")) {
    stats.getSession += 1;
  }
  handler(req, res);
});

server.listen(port, "127.0.0.1", () => {
  const names = plugins.map((p) => p.id).join(",");
  console.log(
    `better-auth ready on ${baseURL} alg=${alg} db=${pool ? "postgres" : "memory"} plugins=${names} sid=${on("SID_CLAIM")}`,
  );
});

const stop = () => {
  server.close();
  if (pool) pool.end();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
