"""The SPDY/3 header compression dictionary (the protocol's constant: spdy-protocol-draft3 section 2.6.10.1,
as moby/spdystream's ``headerDictionary`` carries it, 1423 bytes without a trailing NUL). zlib refuses a
header block whose dictionary id (Adler-32 0xe3c6a7c2) does not match, so every byte counts."""

HEADER_DICTIONARY = (
    b'\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06acc'
    b'ept\x00\x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00'
    b'\x00\x00\raccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\rauthorization\x00\x00\x00\rcache-c'
    b'ontrol\x00\x00\x00\nconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding\x00\x00\x00\x10'
    b'content-language\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-location\x00\x00\x00\x0bco'
    b'ntent-md5\x00\x00\x00\rcontent-range\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00'
    b'\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modifi'
    b'ed-since\x00\x00\x00\rif-none-match\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since'
    b'\x00\x00\x00\rlast-modified\x00\x00\x00\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12p'
    b'roxy-authenticate\x00\x00\x00\x13proxy-authorization\x00\x00\x00\x05range\x00\x00\x00\x07referer'
    b'\x00\x00\x00\x0bretry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encod'
    b'ing\x00\x00\x00\x07upgrade\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10ww'
    b'w-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\x07versi'
    b'on\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\nset-cookie\x00\x00\x00\nkeep-alive\x00'
    b'\x00\x00\x06origin100101201202205206300302303304305306307402405406407'
    b'408409410411412413414415416417502504505203 Non-Authoritative'
    b' Information204 No Content301 Moved Permanently400 Bad Reque'
    b'st401 Unauthorized403 Forbidden404 Not Found500 Internal Ser'
    b'ver Error501 Not Implemented503 Service UnavailableJan Feb M'
    b'ar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, W'
    b'ed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image'
    b'/jpg,image/gif,application/xml,application/xhtml+xml,text/pl'
    b'ain,text/javascript,publicprivatemax-age=gzip,deflate,sdchch'
    b'arset=utf-8charset=iso-8859-1,utf-,*,enq=0.'
)
