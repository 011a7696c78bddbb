// kafkajs against an Odradek broker, driven by tests/integration/compat/test_kafkajs.py.
//
// Reads one JSON job from stdin, prints one JSON result on stdout. Bytes travel as
// base64 (null stays null). kafkajs consumers need consumer groups, so this script only
// administers and produces; the test reads the records back with another client.
//
// Job: {bootstrap, topic, partitions, idempotent, acks, compression: "none"|"gzip",
//       records: [{partition, key, value, headers: [[name, value]], timestamp}],
//       timestamps: [ms, ...], delete: bool}
// Result: {created, createdAgain, metadata, produced: [{partition, errorCode, baseOffset}],
//          offsets, offsetsByTimestamp: {ms: offsets}, and with delete: cluster, configs,
//          partitionsAfterGrow, topicsAfterDelete}
'use strict'

const { Kafka, CompressionTypes, ConfigResourceTypes, logLevel } = require('kafkajs')

const fromBase64 = (text) => (text === null ? null : Buffer.from(text, 'base64'))

function toMessage(record) {
  // Repeated header names become an array, in order; kafkajs writes them one by one.
  const headers = {}
  for (const [name, value] of record.headers) {
    const bytes = fromBase64(value)
    if (name in headers) {
      headers[name] = [].concat(headers[name], [bytes])
    } else {
      headers[name] = bytes
    }
  }
  return {
    partition: record.partition,
    key: fromBase64(record.key),
    value: fromBase64(record.value),
    headers,
    timestamp: String(record.timestamp),
  }
}

function byPartition(rows) {
  return rows
    .map((row) => ({ partition: row.partition, offset: row.offset, low: row.low, high: row.high }))
    .sort((a, b) => a.partition - b.partition)
}

async function main(job) {
  const kafka = new Kafka({
    clientId: 'odradek-compat',
    brokers: [job.bootstrap],
    logLevel: logLevel.ERROR,
    retry: { retries: 3 },
  })
  const result = {}
  const admin = kafka.admin()
  await admin.connect()
  try {
    const topic = { topic: job.topic, numPartitions: job.partitions }
    result.created = await admin.createTopics({ topics: [topic], waitForLeaders: true })
    result.createdAgain = await admin.createTopics({ topics: [topic] })
    const metadata = await admin.fetchTopicMetadata({ topics: [job.topic] })
    result.metadata = metadata.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions
        .map((p) => ({ partition: p.partitionId, leader: p.leader, replicas: p.replicas }))
        .sort((a, b) => a.partition - b.partition),
    }))

    const producer = kafka.producer({
      idempotent: job.idempotent,
      maxInFlightRequests: job.idempotent ? 1 : undefined,
      allowAutoTopicCreation: false,
    })
    await producer.connect()
    try {
      const sent = await producer.send({
        topic: job.topic,
        acks: job.acks,
        compression: job.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
        messages: job.records.map(toMessage),
      })
      result.produced = sent
        .map((meta) => ({
          partition: meta.partition,
          errorCode: meta.errorCode,
          baseOffset: Number(meta.baseOffset),
        }))
        .sort((a, b) => a.partition - b.partition)
    } finally {
      await producer.disconnect()
    }

    result.offsets = byPartition(await admin.fetchTopicOffsets(job.topic))
    result.offsetsByTimestamp = {}
    for (const ms of job.timestamps) {
      const found = await admin.fetchTopicOffsetsByTimestamp(job.topic, ms)
      result.offsetsByTimestamp[ms] = byPartition(found).map((row) => ({
        partition: row.partition,
        offset: Number(row.offset),
      }))
    }

    if (job.delete) {
      const cluster = await admin.describeCluster()
      result.cluster = { brokers: cluster.brokers, controller: cluster.controller }
      const described = await admin.describeConfigs({
        resources: [
          { type: ConfigResourceTypes.TOPIC, name: job.topic, configNames: ['cleanup.policy'] },
        ],
        includeSynonyms: false,
      })
      result.configs = described.resources.map((r) => ({
        errorCode: r.errorCode,
        name: r.resourceName,
        entries: r.configEntries.map((e) => [e.configName, e.configValue, e.isDefault]),
      }))
      await admin.createPartitions({
        topicPartitions: [{ topic: job.topic, count: job.partitions + 1 }],
      })
      const grown = await admin.fetchTopicMetadata({ topics: [job.topic] })
      result.partitionsAfterGrow = grown.topics[0].partitions.length
      await admin.deleteTopics({ topics: [job.topic], timeout: 10000 })
      const listed = await admin.listTopics()
      result.topicsAfterDelete = listed.filter((name) => name === job.topic)
    }
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
    },
    (error) => {
      process.stderr.write(`kafkajs compat failed: ${error.stack || error}\n`)
      if (error.type) {
        process.stderr.write(`kafka error type: ${error.type}\n`)
      }
      process.exitCode = 1
    },
  )
})
