# syntax=docker/dockerfile:1
#
# jarvis-db: the CLI and the daemon, with the tools it drives.
#
#   docker build -t jarvis-db:local .                          # PostgreSQL 15 client tools
#   docker build -t jarvis-db:local --build-arg PG_MAJOR=16 .  # for a PostgreSQL 16 server
#   docker run --rm jarvis-db:local --help
#   docker run --rm --env-file jarvis.env -v jarvis-db-storage:/var/lib/jarvis-db jarvis-db:local plan
#
# The default command is the daemon (`daemon --listen 0.0.0.0:9187`); any other arguments run
# that command instead. The image carries jarvis-db.yaml, migrations/ and policies/ of the
# commit it was built from; mount another config over /app/jarvis-db.yaml (or set
# JARVIS_DB_CONFIG) to use your own.
#
# PostgreSQL client tools: pg_dump and pg_restore must be at least the server's major version
# (jarvis-db refuses older ones). PG_MAJOR picks them. Debian bookworm ships only 15, so 15
# comes from Debian's own archive and any other major from the PostgreSQL project's apt
# repository (PGDG, apt.postgresql.org), which carries every supported major for bookworm.
# They land in /usr/lib/postgresql/<major>/bin, where jarvis-db looks for them.
#
# Redis: redis-tools gives redis-check-rdb (verification of RDB backups) and redis-server the
# throwaway server that restores and restore tests load an RDB into. Both are Debian's 7.0,
# which reads RDB files written by Redis 7.0 and older; for a newer server use method: logical
# or install a newer redis-server.
ARG NODE_MAJOR=20
ARG PG_MAJOR=15

# ---------------------------------------------------------------------------------------------
# toolchain: better-sqlite3 compiles from source when no prebuilt binary can be downloaded.
FROM node:${NODE_MAJOR}-bookworm-slim AS toolchain
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local

# ---------------------------------------------------------------------------------------------
# build: compile TypeScript to dist/ (needs the dev dependencies).
FROM toolchain AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the project's own `prepare` (tsc) needs the sources, copied below; the only
# dependencies with an install script, better-sqlite3 and zstd-napi (optional), are rebuilt explicitly.
RUN npm ci --no-audit --no-fund --ignore-scripts && npm rebuild better-sqlite3 zstd-napi
COPY tsconfig.json ./
COPY src ./src
# The build step after tsc turns the config schema into standalone validators (dist/config/validators.cjs).
COPY schemas ./schemas
COPY scripts/build-validators.mjs ./scripts/
RUN npm run build

# ---------------------------------------------------------------------------------------------
# deps: the production dependencies only.
FROM toolchain AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm rebuild better-sqlite3 zstd-napi

# ---------------------------------------------------------------------------------------------
# runtime
FROM node:${NODE_MAJOR}-bookworm-slim
ARG PG_MAJOR
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl tini; \
    if [ "$PG_MAJOR" != "15" ]; then \
      install -d /usr/share/postgresql-common/pgdg; \
      curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
      echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
      apt-get update; \
    fi; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" redis-tools redis-server zstd; \
    apt-get purge -y --auto-remove curl; \
    rm -rf /var/lib/apt/lists/*; \
    test -x "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump"

# A user of its own (no login, no root); 10001 is what the Kubernetes example runs as.
RUN groupadd --system --gid 10001 jarvis-db \
 && useradd --system --uid 10001 --gid jarvis-db --home-dir /var/lib/jarvis-db --shell /usr/sbin/nologin jarvis-db \
 && install -d -o jarvis-db -g jarvis-db -m 0700 /var/lib/jarvis-db

WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json package-lock.json jarvis-db.yaml ./
COPY bin ./bin
COPY schemas ./schemas
COPY migrations ./migrations
COPY policies ./policies
RUN ln -s /app/bin/jarvis-db.js /usr/local/bin/jarvis-db

ENV NODE_ENV=production \
    JARVIS_DB_CONFIG=/app/jarvis-db.yaml \
    JARVIS_STORAGE=/var/lib/jarvis-db
# Backups, archives, the journal and the health history: keep them on a volume.
VOLUME ["/var/lib/jarvis-db"]
EXPOSE 9187
USER jarvis-db
# tini forwards SIGTERM to jarvis-db (which finishes or abandons its current action and exits)
# and reaps the pg_dump and redis-server children it starts.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/jarvis-db.js"]
CMD ["daemon", "--listen", "0.0.0.0:9187"]
