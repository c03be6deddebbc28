#!/usr/bin/python3
"""An independent reader of TensorBoard event files, for tests/training/test_tensorboard.cpp.

Usage: /usr/bin/python3 read_tfevents.py EVENT_FILE

Reads the TFRecord framing (uint64 length, masked CRC-32C of the length, data, masked CRC-32C
of the data), checks both CRCs of every record, parses each record as a tensorflow.Event with
message classes built at run time from a FileDescriptorProto written here from the published
field numbers (tensorboard/compat/proto/{event,summary,tensor,tensor_shape}.proto: no protoc,
no TensorBoard package), decodes PNG images (zlib + struct) and prints one JSON object:
{"events": [...]} with, per event, wall_time, step, file_version or the summary values.

Needs Debian's python3-protobuf (tools/test installs it); without it the script exits with
status 2 and says so.
"""
import json
import struct
import sys
import zlib

try:
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf import message_factory
except ImportError:
    sys.stderr.write("read_tfevents.py: python3-protobuf is missing: apt-get install python3-protobuf "
                     "(or run tools/install-deps python3-protobuf)\n")
    sys.exit(2)

FD = descriptor_pb2.FieldDescriptorProto


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def field(msg, name, number, ftype, label=FD.LABEL_OPTIONAL, type_name=None, packed=False):
    f = msg.field.add()
    f.name, f.number, f.type, f.label = name, number, ftype, label
    if type_name:
        f.type_name = type_name
    if packed:
        f.options.packed = True
    return f


def build_classes():
    fdp = descriptor_pb2.FileDescriptorProto()
    fdp.name = "focus_test_event.proto"
    fdp.package = "tensorflow"
    fdp.syntax = "proto3"

    dim_shape = fdp.message_type.add(name="TensorShapeProto")
    dim = dim_shape.nested_type.add(name="Dim")
    field(dim, "size", 1, FD.TYPE_INT64)
    field(dim, "name", 2, FD.TYPE_STRING)
    field(dim_shape, "dim", 2, FD.TYPE_MESSAGE, FD.LABEL_REPEATED, ".tensorflow.TensorShapeProto.Dim")
    field(dim_shape, "unknown_rank", 3, FD.TYPE_BOOL)

    dtype = fdp.enum_type.add(name="DataType")
    for name, number in [("DT_INVALID", 0), ("DT_FLOAT", 1), ("DT_DOUBLE", 2), ("DT_INT32", 3), ("DT_UINT8", 4),
                         ("DT_INT16", 5), ("DT_INT8", 6), ("DT_STRING", 7)]:
        dtype.value.add(name=name, number=number)

    tensor = fdp.message_type.add(name="TensorProto")
    field(tensor, "dtype", 1, FD.TYPE_ENUM, type_name=".tensorflow.DataType")
    field(tensor, "tensor_shape", 2, FD.TYPE_MESSAGE, type_name=".tensorflow.TensorShapeProto")
    field(tensor, "version_number", 3, FD.TYPE_INT32)
    field(tensor, "tensor_content", 4, FD.TYPE_BYTES)
    field(tensor, "float_val", 5, FD.TYPE_FLOAT, FD.LABEL_REPEATED, packed=True)
    field(tensor, "double_val", 6, FD.TYPE_DOUBLE, FD.LABEL_REPEATED, packed=True)
    field(tensor, "int_val", 7, FD.TYPE_INT32, FD.LABEL_REPEATED, packed=True)
    field(tensor, "string_val", 8, FD.TYPE_BYTES, FD.LABEL_REPEATED)

    histo = fdp.message_type.add(name="HistogramProto")
    for name, number in [("min", 1), ("max", 2), ("num", 3), ("sum", 4), ("sum_squares", 5)]:
        field(histo, name, number, FD.TYPE_DOUBLE)
    field(histo, "bucket_limit", 6, FD.TYPE_DOUBLE, FD.LABEL_REPEATED, packed=True)
    field(histo, "bucket", 7, FD.TYPE_DOUBLE, FD.LABEL_REPEATED, packed=True)

    meta = fdp.message_type.add(name="SummaryMetadata")
    plugin = meta.nested_type.add(name="PluginData")
    field(plugin, "plugin_name", 1, FD.TYPE_STRING)
    field(plugin, "content", 2, FD.TYPE_BYTES)
    field(meta, "plugin_data", 1, FD.TYPE_MESSAGE, type_name=".tensorflow.SummaryMetadata.PluginData")
    field(meta, "display_name", 2, FD.TYPE_STRING)
    field(meta, "summary_description", 3, FD.TYPE_STRING)

    summary = fdp.message_type.add(name="Summary")
    image = summary.nested_type.add(name="Image")
    field(image, "height", 1, FD.TYPE_INT32)
    field(image, "width", 2, FD.TYPE_INT32)
    field(image, "colorspace", 3, FD.TYPE_INT32)
    field(image, "encoded_image_string", 4, FD.TYPE_BYTES)
    value = summary.nested_type.add(name="Value")
    value.oneof_decl.add(name="value")
    field(value, "node_name", 7, FD.TYPE_STRING)
    field(value, "tag", 1, FD.TYPE_STRING)
    field(value, "metadata", 9, FD.TYPE_MESSAGE, type_name=".tensorflow.SummaryMetadata")
    for name, number, ftype, tname in [("simple_value", 2, FD.TYPE_FLOAT, None),
                                       ("obsolete_old_style_histogram", 3, FD.TYPE_BYTES, None),
                                       ("image", 4, FD.TYPE_MESSAGE, ".tensorflow.Summary.Image"),
                                       ("histo", 5, FD.TYPE_MESSAGE, ".tensorflow.HistogramProto"),
                                       ("tensor", 8, FD.TYPE_MESSAGE, ".tensorflow.TensorProto")]:
        f = field(value, name, number, ftype, type_name=tname)
        f.oneof_index = 0
    field(summary, "value", 1, FD.TYPE_MESSAGE, FD.LABEL_REPEATED, ".tensorflow.Summary.Value")

    session_log = fdp.message_type.add(name="SessionLog")
    status = session_log.enum_type.add(name="SessionStatus")
    for name, number in [("STATUS_UNSPECIFIED", 0), ("START", 1), ("STOP", 2), ("CHECKPOINT", 3)]:
        status.value.add(name=name, number=number)
    field(session_log, "status", 1, FD.TYPE_ENUM, type_name=".tensorflow.SessionLog.SessionStatus")
    field(session_log, "checkpoint_path", 2, FD.TYPE_STRING)
    field(session_log, "msg", 3, FD.TYPE_STRING)

    event = fdp.message_type.add(name="Event")
    event.oneof_decl.add(name="what")
    field(event, "wall_time", 1, FD.TYPE_DOUBLE)
    field(event, "step", 2, FD.TYPE_INT64)
    for name, number, ftype, tname in [("file_version", 3, FD.TYPE_STRING, None),
                                       ("graph_def", 4, FD.TYPE_BYTES, None),
                                       ("summary", 5, FD.TYPE_MESSAGE, ".tensorflow.Summary"),
                                       ("session_log", 6, FD.TYPE_MESSAGE, ".tensorflow.SessionLog")]:
        f = field(event, name, number, ftype, type_name=tname)
        f.oneof_index = 0

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    desc = pool.FindMessageTypeByName("tensorflow.Event")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def decode_png(data):
    """8-bit gray/RGB/RGBA PNG (no interlace) -> (width, height, channels, pixel list)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("no PNG signature")
    pos, idat, width = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ValueError("PNG chunk %r: bad CRC" % kind)
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or interlace != 0:
                raise ValueError("PNG depth %d interlace %d not handled" % (depth, interlace))
            channels = {0: 1, 4: 2, 2: 3, 6: 4}[color]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    out, prev = [], [0] * stride
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        ftype, cur = line[0], list(line[1:])
        for i in range(stride):
            a = cur[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                cur[i] = (cur[i] + a) & 0xFF
            elif ftype == 2:
                cur[i] = (cur[i] + b) & 0xFF
            elif ftype == 3:
                cur[i] = (cur[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (cur[i] + pred) & 0xFF
            elif ftype != 0:
                raise ValueError("PNG filter %d" % ftype)
        out.extend(cur)
        prev = cur
    return width, height, channels, out


def num(x):
    """JSON has no NaN or infinity: those become the strings "nan", "inf", "-inf"."""
    return x if x == x and abs(x) != float("inf") else str(x)


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: read_tfevents.py EVENT_FILE\n")
        return 2
    Event = build_classes()
    data = open(sys.argv[1], "rb").read()
    pos, events = 0, []
    while pos < len(data):
        if len(data) - pos < 12:
            raise ValueError("truncated record header at byte %d" % pos)
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if masked(crc32c(header)) != length_crc:
            raise ValueError("bad length CRC at byte %d" % pos)
        body = data[pos + 12:pos + 12 + length]
        if len(body) != length or len(data) < pos + 16 + length:
            raise ValueError("truncated record at byte %d" % pos)
        (data_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if masked(crc32c(body)) != data_crc:
            raise ValueError("bad data CRC at byte %d" % pos)
        pos += 16 + length
        ev = Event()
        ev.ParseFromString(body)
        out = {"wall_time": ev.wall_time, "step": ev.step}
        if ev.HasField("file_version"):
            out["file_version"] = ev.file_version
        if ev.HasField("session_log"):
            out["session_log"] = ev.session_log.status
        if ev.HasField("summary"):
            values = []
            for v in ev.summary.value:
                kind = v.WhichOneof("value")
                item = {"tag": v.tag, "kind": kind}
                if kind == "simple_value":
                    item["value"] = num(v.simple_value)
                elif kind == "histo":
                    h = v.histo
                    item.update(min=h.min, max=h.max, num=h.num, sum=h.sum, sum_squares=h.sum_squares,
                                bucket_limit=list(h.bucket_limit), bucket=list(h.bucket))
                elif kind == "image":
                    im = v.image
                    png = im.encoded_image_string
                    w, hgt, ch, pixels = decode_png(png)
                    item.update(height=im.height, width=im.width, colorspace=im.colorspace, png_bytes=len(png),
                                png_signature=png[:8] == b"\x89PNG\r\n\x1a\n", png_width=w, png_height=hgt,
                                png_channels=ch, pixels=pixels)
                elif kind == "tensor":
                    t = v.tensor
                    item.update(dtype=t.dtype, shape=[d.size for d in t.tensor_shape.dim],
                                strings=[s.decode("utf-8") for s in t.string_val])
                if v.HasField("metadata"):
                    item["plugin_name"] = v.metadata.plugin_data.plugin_name
                    item["plugin_content"] = v.metadata.plugin_data.content.hex()
                values.append(item)
            out["values"] = values
        events.append(out)
    print(json.dumps({"events": events}, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
