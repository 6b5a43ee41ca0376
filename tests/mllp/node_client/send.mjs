// Sends HL7 messages to an MLLP listener with Medplum's HL7 client (@medplum/hl7, the client Medplum's agent
// uses): an MLLP implementation from another ecosystem, so the gateway's framing and ACKs are checked against
// code we did not write.
// Usage: node send.mjs HOST PORT MESSAGES.json  (a JSON list of lists: one list of ER7 strings per connection)
// Prints JSON: one list per connection of {sent, ack} (ER7 strings, segments joined by "\r").
import { readFileSync } from 'node:fs';
import { Hl7Message } from '@medplum/core';
import { Hl7Client } from '@medplum/hl7';

const [host, port, file] = process.argv.slice(2);
const connections = JSON.parse(readFileSync(file, 'utf8'));

async function one(messages) {
  const client = new Hl7Client({ host, port: Number(port) });
  const out = [];
  try {
    for (const text of messages) {
      const msg = Hl7Message.parse(text);
      const ack = await client.sendAndWait(msg, { timeoutMs: 10000 });
      out.push({ sent: msg.toString(), ack: ack.toString() });
    }
  } finally {
    await client.close();
  }
  return out;
}

const results = await Promise.all(connections.map(one));
process.stdout.write(JSON.stringify(results));
