// A kafkajs consumer group against an Odradek broker, driven by
// tests/integration/groups/test_clients.py.
//
// Reads one JSON job from stdin, prints one JSON result on stdout. Starts `consumers`
// members of `group` (consumer.run with eachMessage, autoCommit), waits until the group
// has settled (the members' latest GROUP_JOIN assignments cover every partition once),
// then produces `count` records and waits until they are consumed. The members then
// disconnect (committing), and an admin fetches the group's committed offsets.
//
// Job: {bootstrap, topic, partitions, group, consumers, count}
// Result: {joins: [{member, generation?, partitions}], consumed: [{member, partition,
//          offset, value}], committed: [{partition, offset}]}
'use strict'

const { Kafka, logLevel } = require('kafkajs')

const deadline = (ms, what) =>
  new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))

function waitFor(condition, ms, what) {
  return Promise.race([
    new Promise((resolve) => {
      const check = () => (condition() ? resolve() : setTimeout(check, 50))
      check()
    }),
    deadline(ms, what),
  ])
}

async function main(job) {
  const kafka = new Kafka({
    clientId: 'odradek-group',
    brokers: [job.bootstrap],
    logLevel: logLevel.ERROR,
    retry: { retries: 5 },
  })
  const result = { joins: [], consumed: [], committed: [] }
  const latest = new Map() // member index -> partitions of its latest join
  const consumers = []
  for (let i = 0; i < job.consumers; i++) {
    const consumer = kafka.consumer({
      groupId: job.group,
      sessionTimeout: 6000,
      heartbeatInterval: 1000,
      rebalanceTimeout: 10000,
      maxWaitTimeInMs: 500, // heartbeats go out between fetches: keep rebalances quick
    })
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const partitions = (payload.memberAssignment[job.topic] || []).slice().sort()
      latest.set(i, partitions)
      result.joins.push({ member: i, partitions })
    })
    await consumer.connect()
    await consumer.subscribe({ topics: [job.topic], fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        result.consumed.push({
          member: i,
          partition,
          offset: Number(message.offset),
          value: message.value.toString(),
        })
      },
    })
    consumers.push(consumer)
  }

  const settled = () => {
    if (latest.size !== job.consumers) return false
    const owned = [...latest.values()].flat()
    return owned.length === job.partitions && new Set(owned).size === job.partitions
  }
  await waitFor(settled, 30000, 'the group to settle')

  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const messages = []
  for (let n = 0; n < job.count; n++) {
    messages.push({ partition: n % job.partitions, value: `kjs-${n}` })
  }
  await producer.send({ topic: job.topic, acks: -1, messages })
  await producer.disconnect()

  await waitFor(() => result.consumed.length >= job.count, 30000, 'every record consumed')
  for (const consumer of consumers) {
    await consumer.disconnect() // commits what was consumed, then leaves the group
  }

  const admin = kafka.admin()
  await admin.connect()
  try {
    const fetched = await admin.fetchOffsets({ groupId: job.group, topics: [job.topic] })
    result.committed = fetched[0].partitions
      .map((p) => ({ partition: p.partition, offset: Number(p.offset) }))
      .sort((a, b) => a.partition - b.partition)
  } finally {
    await admin.disconnect()
  }
  return result
}

let input = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  input += chunk
})
process.stdin.on('end', () => {
  main(JSON.parse(input)).then(
    (result) => {
      process.stdout.write(JSON.stringify(result) + '\n')
      process.exit(0)
    },
    (error) => {
      process.stderr.write(`kafkajs group failed: ${error.stack || error}\n`)
      process.exit(1)
    },
  )
})
