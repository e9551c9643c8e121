// face-api.js's side of benchmarks/photo_peers.py: node benchmarks/peer_faceapi_photos.cjs MODULES REQUEST_JSON
//
// MODULES: the node_modules folder that benchmarks/peers.py installed (face-api.js 1.7.15, TensorFlow.js
// 4.22 on its WASM backend). REQUEST_JSON: a list of {"rgb": raw RGB file, "height", "width",
// "boxes": [[left, top, right, bottom], ...]} (each photo's labelled faces). For each photo, as face-api's
// README runs it: detectAllFaces (SSD MobileNet v1, its default options) with withFaceExpressions; and
// the expression net on each labelled box cut by face-api's own extractFaceTensors. Prints one JSON line
// per photo: {"found": [[left, top, right, bottom, label], ...], "boxes": [label per labelled box]}.
const fs = require('fs');
const path = require('path');

const modules = process.argv[2];
const faceapi = require(path.join(modules, '@vladmandic/face-api/dist/face-api.node-wasm.js'));
const wasm = require(path.join(modules, '@tensorflow/tfjs-backend-wasm'));
const tf = faceapi.tf;
const LABELS = { angry: 'angry', disgusted: 'disgust', fearful: 'fear', happy: 'happy', sad: 'sad',
  surprised: 'surprise', neutral: 'neutral' };

function topLabel(expressions) {
  const best = Object.keys(LABELS).reduce((a, b) => (expressions[a] >= expressions[b] ? a : b));
  return LABELS[best];
}

async function main() {
  wasm.setWasmPaths(path.join(modules, '@tensorflow/tfjs-backend-wasm/dist') + path.sep);
  await tf.setBackend('wasm');
  await tf.ready();
  const weights = path.join(modules, '@vladmandic/face-api/model');
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(weights);
  await faceapi.nets.faceExpressionNet.loadFromDisk(weights);
  for (const photo of JSON.parse(fs.readFileSync(process.argv[3]))) {
    const pixels = new Uint8Array(fs.readFileSync(photo.rgb));
    const image = tf.tensor3d(pixels, [photo.height, photo.width, 3], 'int32');
    const detected = await faceapi.detectAllFaces(image).withFaceExpressions();
    const found = detected.map((d) => {
      const b = d.detection.box;
      return [b.x, b.y, b.x + b.width, b.y + b.height, topLabel(d.expressions)];
    });
    const rects = photo.boxes.map(([l, t, r, b]) => new faceapi.Rect(l, t, r - l, b - t));
    const faces = await faceapi.extractFaceTensors(image, rects);
    const boxes = [];
    for (const face of faces) {
      boxes.push(topLabel(await faceapi.nets.faceExpressionNet.predictExpressions(face)));
      face.dispose();
    }
    image.dispose();
    process.stdout.write(JSON.stringify({ found, boxes }) + '\n');
  }
}

main().catch((error) => { console.error(error.stack || String(error)); process.exit(1); });
