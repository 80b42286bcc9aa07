/**
 * A state body the client stops sending (it went away mid-upload) is the client's doing: the route
 * logs it as a refused request, not as a server failure, and writes nothing.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import { startTfhttpFixture } from "./fixture.ts";

const fx = await startTfhttpFixture();

test("a client that goes away mid-body leaves no error log line and no state", async () => {
  const ws = fx.workspaceName("cut");
  const { port } = new URL(fx.url);
  const socket = net.connect(Number(port), "127.0.0.1");
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  socket.write(
    `POST /terraform/state/${ws} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"serial":`,
  );
  await new Promise((r) => setTimeout(r, 100));
  socket.destroy();
  const deadline = Date.now() + 5000;
  const refused = () =>
    fx.logLines.find((l) => l.workspace === ws && typeof l.msg === "string" && l.msg.includes("refused"));
  while (refused() === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(refused(), "the cut request is logged as refused");
  assert.deepEqual(
    fx.logLines.filter((l) => l.level === "error"),
    [],
  );
  assert.equal(await fx.coordinator.getState(ws), null);
});
