// Peer for bench/realtime/run: one socket.io 4.8 replica with @socket.io/redis-adapter 8
// (classic pub/sub adapter). Clients join the room named in their handshake query; an HTTP
// `POST /publish {room, event}` emits `event` to the room on every replica (the same shape as
// cloud-realtime's internal publish route). Prints {"listening": port} once ready.
import http from 'node:http';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';

const redisUrl = process.env.REDIS_URL;
const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
pub.on('error', (e) => console.error('redis pub', e.message));
sub.on('error', (e) => console.error('redis sub', e.message));
await Promise.all([pub.connect(), sub.connect()]);

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/publish') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      io.to(body.room).emit('event', body.event);
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    return;
  }
  if (req.url === '/healthz') {
    res.writeHead(200).end('ok');
    return;
  }
  res.writeHead(404).end();
});

const io = new Server(server, {
  transports: ['websocket'],
  adapter: createAdapter(pub, sub),
  serveClient: false,
});
io.on('connection', (socket) => {
  const room = socket.handshake.query.room;
  if (typeof room === 'string' && room) socket.join(room);
});

server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: server.address().port }));
});
const stop = () => {
  io.close();
  Promise.allSettled([pub.quit(), sub.quit()]).finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
