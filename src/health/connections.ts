/**
 * Connections a long-running checker (the daemon) keeps between checks, as postgres_exporter and
 * redis_exporter do: a new PostgreSQL session per check costs the server a fork and a SCRAM
 * handshake, several times the cost of the health query itself. A connection that broke (the
 * server restarted or went away) is dropped and made again at the next use.
 */
import type pg from 'pg';
import type { RespConnection } from '../services/redis-resp.js';
import type { ChromaRest } from '../services/chroma.js';
import type { ChromaService } from '../config/types.js';

export class HealthConnections {
  private pg?: { client: pg.Client; url: string; broken: boolean };
  private redis?: { client: RespConnection; url: string };
  private chroma?: { client: ChromaRest; url: string };

  async postgres(url: string): Promise<pg.Client> {
    if (this.pg && (this.pg.broken || this.pg.url !== url)) this.dropPostgres();
    if (this.pg) return this.pg.client;
    const { connectPostgres } = await import('../services/postgres.js');
    const client = await connectPostgres(url, { applicationName: 'jarvis-db health', connectTimeoutMs: 5000 });
    const entry = { client, url, broken: false };
    client.on('error', () => { entry.broken = true; });
    client.on('end', () => { entry.broken = true; });
    this.pg = entry;
    return client;
  }

  dropPostgres(): void {
    const old = this.pg;
    this.pg = undefined;
    void old?.client.end().catch(() => undefined);
  }

  async redisClient(url: string): Promise<RespConnection> {
    if (this.redis && (this.redis.client.broken || this.redis.url !== url)) this.dropRedis();
    if (this.redis) return this.redis.client;
    const { openRedisProbe } = await import('../services/redis-resp.js');
    const client = await openRedisProbe(url, { connectTimeoutMs: 5000, name: 'jarvis-db-health' });
    this.redis = { client, url };
    return client;
  }

  dropRedis(): void {
    this.redis?.client.close();
    this.redis = undefined;
  }

  async chromaRest(service: ChromaService): Promise<ChromaRest> {
    if (this.chroma && this.chroma.url === service.url) return this.chroma.client;
    this.chroma?.client.close();
    const { ChromaRest } = await import('../services/chroma.js');
    const client = new ChromaRest(service);
    this.chroma = { client, url: service.url };
    return client;
  }

  async close(): Promise<void> {
    const pgClient = this.pg?.client;
    this.pg = undefined;
    this.dropRedis();
    this.chroma?.client.close();
    this.chroma = undefined;
    await pgClient?.end().catch(() => undefined);
  }
}
