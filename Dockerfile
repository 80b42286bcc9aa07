# syntax=docker/dockerfile:1
# oci-tfstate: Terraform/OpenTofu state in OCI registries, served over Connect, gRPC and gRPC-Web.
#
#   docker build -t oci-tfstate .
#   docker run --rm -p 8080:8080 -v tfstate:/data -v "$PWD/tokens.yaml:/etc/oci-tfstate/tokens.yaml:ro" \
#     -e OCI_TFSTATE_TOKENS_FILE=/etc/oci-tfstate/tokens.yaml oci-tfstate
#   docker run --rm -p 8080:8080 -e OCI_TFSTATE_REPOSITORY=ghcr.io/org/tfstate \
#     -e OCI_TFSTATE_OIDC_ISSUER=https://token.actions.githubusercontent.com -e OCI_TFSTATE_OIDC_AUDIENCE=oci-tfstate \
#     -e OCI_TFSTATE_REGISTRY_USERNAME=me -e OCI_TFSTATE_REGISTRY_PASSWORD_FILE=/run/secrets/ghcr oci-tfstate
#
# The image listens on every address, so it needs identity (a tokens file, an OIDC issuer) or it
# exits 2 saying so; -e OCI_TFSTATE_ALLOW_ANONYMOUS=true serves strangers on a trusted network only.
#
# Node 24 runs the TypeScript sources directly (type stripping), so there is no build step and no
# TypeScript toolchain in the image. Keep the major version in step with CI.
ARG NODE_IMAGE=node:24-bookworm-slim

# Production dependencies only, installed from the lockfile without running package scripts.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    OCI_TFSTATE_LISTEN=0.0.0.0:8080 \
    OCI_TFSTATE_REPOSITORY=oci-layout:/data
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root package.json ./
COPY --chown=root:root src ./src
# The dashboard, built and committed (npm run build:web; CI checks it matches web/): served at /.
COPY --chown=root:root web/dist ./web/dist
# The embedded store (an OCI image layout) lives on a volume owned by the unprivileged user; the
# application files stay root-owned and read-only to it.
RUN mkdir -p /data && chown node:node /data \
 && node src/launch.ts --help > /dev/null
USER node
VOLUME ["/data"]
EXPOSE 8080
# Liveness of the process itself (/healthz); readiness of the registry is /readyz and gRPC health.
# Follows OCI_TFSTATE_LISTEN's port and OCI_TFSTATE_TLS_CERT; no curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["node", "-e", "const a=process.env.OCI_TFSTATE_LISTEN||':8080';const port=Number(a.slice(a.lastIndexOf(':')+1));const tls=Boolean(process.env.OCI_TFSTATE_TLS_CERT);require(tls?'node:https':'node:http').get({host:'127.0.0.1',port,path:'/healthz',rejectUnauthorized:false,timeout:4000},(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1));"]
STOPSIGNAL SIGTERM
# The launcher re-executes itself in place (same PID) as `node <V8 settings> src/cli.ts`: see
# src/launch.ts for the settings and why. Set NODE_OPTIONS to override one of them.
ENTRYPOINT ["node", "src/launch.ts"]
