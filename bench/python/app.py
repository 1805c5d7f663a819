"""The verifier that users of Better Auth write today, as a benchmark baseline.

FastAPI + PyJWT's PyJWKClient under uvicorn, shaped like the Better Auth
Python guides: fetch the JWKS from the auth server, pick the key by the
token's kid, verify signature, issuer, audience and expiry, and answer
nginx's auth_request with 200 (plus x-user-id) or 401. It is here to be
measured against, not used.

Environment: JWKS_URL, JWT_ISSUER, JWT_AUDIENCE.
"""

import os

import jwt
from fastapi import FastAPI, Request, Response

JWKS_URL = os.environ["JWKS_URL"]
ISSUER = os.environ["JWT_ISSUER"]
AUDIENCE = os.environ["JWT_AUDIENCE"]

jwks_client = jwt.PyJWKClient(JWKS_URL)
app = FastAPI()


@app.get("/auth")
async def auth(request: Request) -> Response:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return Response(status_code=401)
    try:
        signing_key = jwks_client.get_signing_key_from_jwt(token)
        payload = jwt.decode(
            token,
            signing_key.key,
            algorithms=["EdDSA", "ES256", "RS256", "PS256"],
            issuer=ISSUER,
            audience=AUDIENCE,
        )
    except jwt.PyJWTError:
        return Response(status_code=401)
    return Response(status_code=200, headers={"x-user-id": str(payload.get("sub", ""))})
