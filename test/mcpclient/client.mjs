// An MCP client nobody on this project wrote — the TypeScript SDK's (@modelcontextprotocol/sdk) —
// driving `gkexec mcp` through one agent-like session: list the tools, run code with its output
// streamed as progress, get a figure back as an image, keep state in a session, read an error.
// It prints a transcript, one JSON object per step with its timing, and exits 1 on the first
// check that fails. run.sh installs the SDK (outside the repository) and runs it:
//
//   test/mcpclient/run.sh stdio <gkexec> mcp --kubeconfig ... -n NAMESPACE
//   GKEXEC_MCP_TOKEN=... test/mcpclient/run.sh http http://127.0.0.1:8090/mcp
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, ...rest] = process.argv.slice(2);
let transport;
if (mode === "stdio") {
  transport = new StdioClientTransport({ command: rest[0], args: rest.slice(1), stderr: "inherit" });
} else if (mode === "http") {
  const headers = process.env.GKEXEC_MCP_TOKEN ? { Authorization: `Bearer ${process.env.GKEXEC_MCP_TOKEN}` } : {};
  transport = new StreamableHTTPClientTransport(new URL(rest[0]), { requestInit: { headers } });
} else {
  console.error("usage: client.mjs stdio COMMAND [ARGS...] | http URL");
  process.exit(2);
}

function check(ok, what, detail) {
  if (!ok) {
    console.error(`FAIL: ${what}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    process.exit(1);
  }
}

const started = Date.now();
async function step(name, f) {
  const t0 = Date.now();
  const out = await f();
  console.log(JSON.stringify({ step: name, ms: Date.now() - t0, at_ms: t0 - started, ...out }));
  return out;
}

const client = new Client({ name: "gkexec-test-ts-client", version: "1.0.0" });
await step("connect", async () => {
  await client.connect(transport);
  return { server: client.getServerVersion() };
});

const tools = await step("tools/list", async () => {
  const { tools } = await client.listTools();
  return { tools: tools.map((t) => t.name) };
});
for (const name of ["run_code", "open_session", "run_in_session", "upload_file", "download_file", "close_session", "describe_sandbox"]) {
  check(tools.tools.includes(name), "tool listed", name);
}
const listed = (await client.listTools()).tools;
const runCode = listed.find((t) => t.name === "run_code");
const languages = runCode.inputSchema.properties.language.enum ?? [];
for (const language of ["python", "bash", "javascript"]) {
  check(languages.includes(language), `run_code offers ${language}`, runCode.inputSchema.properties.language);
}

// The figure: a PNG drawn with the standard library (the image has no matplotlib).
const figure = `import os, struct, time, zlib
print("drawing", flush=True)
time.sleep(1)
w, h = 64, 32
rows = b"".join(b"\\x00" + b"".join(bytes((x * 4 % 256, y * 8 % 256, 128)) for x in range(w)) for y in range(h))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
os.makedirs("output", exist_ok=True)
open("output/figure.png", "wb").write(png)
print("saved figure.png", len(png), "bytes")
`;
const progress = [];
await step("tools/call run_code (figure, progress)", async () => {
  const res = await client.callTool({ name: "run_code", arguments: { code: figure } }, undefined, {
    onprogress: (p) => progress.push(p.message),
    timeout: 300000,
  });
  check(!res.isError, "run_code succeeded", res.content?.[0]);
  check(res.structuredContent?.status === "ok", "status ok", res.structuredContent);
  const image = res.content.find((c) => c.type === "image");
  check(image && image.mimeType === "image/png" && Buffer.from(image.data, "base64").subarray(1, 4).toString() === "PNG", "a PNG image came back", res.content.map((c) => c.type));
  check(progress.join("").includes("drawing"), "output streamed as progress before the result", progress);
  return { status: res.structuredContent.status, stdout: res.structuredContent.stdout, image: { mimeType: image.mimeType, bytes: Buffer.from(image.data, "base64").length },
    progress, code_seconds: res.structuredContent.code_seconds, total_seconds: res.structuredContent.total_seconds };
});

await step("tools/call run_code (bash)", async () => {
  const res = await client.callTool({ name: "run_code", arguments: { language: "bash", code: 'echo "sum=$((40 + 2))"' } }, undefined, { timeout: 300000 });
  check(!res.isError && res.structuredContent?.stdout === "sum=42\n", "bash ran in the sandbox", res.structuredContent ?? res.content);
  return { status: res.structuredContent.status, stdout: res.structuredContent.stdout };
});

const session = await step("tools/call open_session", async () => {
  const res = await client.callTool({ name: "open_session", arguments: {} }, undefined, { timeout: 300000 });
  check(!res.isError, "open_session succeeded", res.content?.[0]);
  return { session_id: res.structuredContent.session_id, sandbox: res.structuredContent.sandbox };
});
for (const [code, want] of [["x = 41", ""], ["x += 1\nprint(x)", "42\n"]]) {
  await step(`tools/call run_in_session ${JSON.stringify(code)}`, async () => {
    const res = await client.callTool({ name: "run_in_session", arguments: { session_id: session.session_id, code } });
    check(!res.isError && res.structuredContent.stdout === want, `run_in_session ${code}`, res.structuredContent ?? res.content);
    return { stdout: res.structuredContent.stdout, total_seconds: res.structuredContent.total_seconds };
  });
}
await step("tools/call run_in_session (an error)", async () => {
  const res = await client.callTool({ name: "run_in_session", arguments: { session_id: "no-such-session", code: "print(x)" } });
  check(res.isError && res.content[0].text.startsWith("session_not_found"), "an unknown session is a tool error naming session_not_found", res.content);
  return { isError: res.isError, text: res.content[0].text };
});
await step("tools/call close_session", async () => {
  const res = await client.callTool({ name: "close_session", arguments: { session_id: session.session_id } });
  check(!res.isError && res.structuredContent.closed === true, "close_session", res.content);
  return { closed: true };
});
await client.close();
console.log(JSON.stringify({ step: "done", total_ms: Date.now() - started }));
