// Package dashboard serves a live attention dashboard to web browsers, fed from sestream's NATS messages.
package dashboard
