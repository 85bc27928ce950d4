/*
 * payload.c - shared, reference-counted frames for broadcast (see payload.h).
 */
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include "payload.h"
#include "ws_frame.h"

mcpgw_payload *mcpgw_payload_new_frame(int opcode, unsigned rsv, const void *body, size_t len)
{
    uint8_t header[MCPGW_WS_MAX_HEADER];
    size_t hlen = mcpgw_ws_encode_header(header, opcode, rsv, len);
    mcpgw_payload *p = malloc(sizeof(*p) + hlen + len);

    if (!p)
        return NULL;
    p->refs = 1;
    p->len = hlen + len;
    p->payload_len = len;
    memcpy(p->bytes, header, hlen);
    if (len)
        memcpy(p->bytes + hlen, body, len);
    return p;
}

void mcpgw_payload_unref(mcpgw_payload *p)
{
    if (p && --p->refs == 0)
        free(p);
}

static void payload_release(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    mcpgw_payload_unref(arg);
}

int mcpgw_payload_append(mcpgw_payload *p, struct evbuffer *out)
{
    return mcpgw_payload_append_from(p, out, 0);
}

int mcpgw_payload_append_from(mcpgw_payload *p, struct evbuffer *out, size_t from)
{
    if (from >= p->len)
        return 0;
    p->refs++;
    if (evbuffer_add_reference(out, p->bytes + from, p->len - from, payload_release, p) != 0) {
        p->refs--;
        return -1;
    }
    return 0;
}
