package mcp

import (
	"context"
	"strings"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gkexec/gkexec/runner"
)

// MetaStream is the _meta key of a progress notification that carries output: "stdout" or
// "stderr", the stream its message came from.
const MetaStream = "gkexec.dev/stream"

// progress streams the code's output to the client as progress notifications while it runs,
// when the call carries a progress token (nil otherwise): each chunk's text is a notification's
// message, its stream in _meta (MetaStream), and progress counts the output's bytes so far, so it
// grows with every notification; the total is unknown. A character split between two chunks is
// held back and sent whole with its stream's next chunk, so every message is valid UTF-8 and the
// messages of a stream add up to its output (bytes that never make a character are sent as
// U+FFFD). The runner calls it one chunk at a time, never after Execute returns.
func progress(ctx context.Context, call *sdk.CallToolRequest) func(runner.Stream, []byte) {
	token := call.Params.GetProgressToken()
	if token == nil || call.Session == nil {
		return nil
	}
	var sent float64
	held := map[runner.Stream][]byte{}
	return func(st runner.Stream, p []byte) {
		text := append(held[st], p...)
		cut := completeUTF8(text)
		held[st] = append([]byte(nil), text[cut:]...)
		if cut == 0 {
			return
		}
		sent += float64(cut)
		name := "stdout"
		if st == runner.Stderr {
			name = "stderr"
		}
		// A client that went away ends the call's context: the runner then stops calling.
		_ = call.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{
			ProgressToken: token, Progress: sent,
			Message: strings.ToValidUTF8(string(text[:cut]), "\uFFFD"),
			Meta:    sdk.Meta{MetaStream: name},
		})
	}
}

// completeUTF8 is the length of b's longest prefix that does not end inside a character that
// more bytes could complete.
func completeUTF8(b []byte) int {
	// A character is at most utf8.UTFMax bytes: look back that far for the last one's start.
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}
